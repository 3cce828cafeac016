package collect

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"

	"github.com/vtrace/vtrace/host/meta"
	"github.com/vtrace/vtrace/host/session"
	"github.com/vtrace/vtrace/host/tracedat"
	"github.com/vtrace/vtrace/proto/ringbuf"
	"github.com/vtrace/vtrace/proto/wire"
)

// agent is collect's side of the conversation with the guest agent
// (with Config.Start only): a protocol session, or the line protocol's
// bare orders when no agent answered the handshake. It keeps the splice loop free of
// the protocol.
type agent struct {
	cfg      Config
	sess     *session.Session
	set      *meta.Set                       // metadata so far; nil in line-protocol mode
	stats    atomic.Pointer[[]wire.CPUStats] // the last Stats, for the progress line
	tl       *timeline                       // clock probes while recording; nil without a timeline
	life     *liveness                       // where the agent's silence is reported
	activity func() int64                    // bytes the streams moved so far
	gone     bool                            // abandoned: the guest went away

	watchStop context.CancelFunc
	watchDone sync.WaitGroup
}

// openAgent says Hello; in line-protocol mode it prints the notice on
// cfg.Log and refuses settings.
func openAgent(ctx context.Context, cfg Config, sum *Summary) (*agent, error) {
	sess, err := session.Open(ctx, cfg.Dir, session.Options{
		OpenTimeout: cfg.OrderTimeout, HandshakeTimeout: cfg.HandshakeTimeout, ReplyTimeout: cfg.OrderTimeout,
	})
	if err != nil {
		return nil, err
	}
	a := &agent{cfg: cfg, sess: sess}
	if sess.LineProtocol() {
		if !cfg.Settings.IsZero() {
			sess.Close()
			return nil, fmt.Errorf("check the recording's settings: %w on the control channel within %v, and %w",
				session.ErrLineProtocol, cfg.HandshakeTimeout, session.ErrNoSettings)
		}
		notice := sess.LineProtocolNotice() + "; the capture will be raw pages only (no metadata, no trace.dat)"
		if cfg.Log != nil {
			fmt.Fprintln(cfg.Log, notice)
		}
		sum.Notes = append(sum.Notes, notice)
		return a, nil
	}
	sum.Agent = sess.Hello()
	sess.OnStats(func(cpus []wire.CPUStats) { a.stats.Store(&cpus) })
	return a, nil
}

func (a *agent) protocol() bool { return a != nil && !a.sess.LineProtocol() }

// recording reports whether the agent said, in its handshake, that it
// records already.
func (a *agent) recording() bool { return a.protocol() && a.sess.Hello().State == wire.StateRecording }

func (a *agent) close() {
	if a != nil {
		a.sess.Close()
	}
}

// fetchMeta asks for the metadata a trace.dat needs and saves it as
// OUT/meta at once, so that a capture cut short can still be converted.
func (a *agent) fetchMeta(ctx context.Context, sum *Summary) error {
	a.set = &meta.Set{}
	errs, err := a.sess.Meta(ctx, session.MetaBefore, a.set)
	if err != nil {
		return err
	}
	for _, e := range errs {
		sum.Notes = append(sum.Notes, "the agent could not send metadata: "+e)
	}
	a.set.Clock = session.SelectClock(a.set.Clock, a.cfg.Settings.Clock)
	return a.save(sum)
}

// MetaAtStart is the metadata that belongs to the directory a recording
// streams, asked for again once the agent started it: the settings (an
// instance of the agent's) or the guest (a sub-buffer size changed since
// the handshake) may have given it another page layout or clock.
var MetaAtStart = []wire.MetaKind{wire.MetaHeaderPage, wire.MetaTraceClock}

// refetch replaces the header_page and trace_clock fetched before the
// start with the streamed directory's, and saves OUT/meta again. A failure
// leaves the earlier ones, with a note.
func (a *agent) refetch(ctx context.Context, sum *Summary) {
	fresh := &meta.Set{}
	errs, err := a.sess.Meta(ctx, MetaAtStart, fresh)
	for _, e := range errs {
		sum.Notes = append(sum.Notes, "the agent could not send metadata: "+e)
	}
	if err == nil && len(fresh.HeaderPage) > 0 {
		if _, err = fresh.Layout(); err == nil {
			a.set.HeaderPage = fresh.HeaderPage
		}
	}
	if err != nil {
		sum.Notes = append(sum.Notes, fmt.Sprintf("the page layout of the recording is the one from before the start: %v", err))
	}
	if fresh.Clock != "" {
		a.set.Clock = session.SelectClock(fresh.Clock, a.cfg.Settings.Clock)
	}
	if err := a.save(sum); err != nil {
		sum.Notes = append(sum.Notes, err.Error())
	}
}

func (a *agent) save(sum *Summary) error {
	dir := filepath.Join(a.cfg.Out, MetaDir)
	if err := meta.Save(a.set, dir); err != nil {
		return err // "save metadata: ..."
	}
	sum.Meta = dir
	return nil
}

// start asks the agent to record, asks again for the page layout and
// clock of the directory it now streams, and starts reading its Stats.
func (a *agent) start(ctx context.Context, sum *Summary) error {
	if err := a.sess.Start(ctx, a.cfg.Settings); err != nil {
		return err
	}
	if a.protocol() && a.set != nil {
		a.refetch(ctx, sum)
	}
	if a.protocol() {
		// Not ctx's: that ends with the start (see guestRun.start); stop
		// and abandon end the watch.
		wctx, cancel := context.WithCancel(context.WithoutCancel(ctx))
		a.watchStop = cancel
		a.watchDone.Add(1)
		go func() {
			defer a.watchDone.Done()
			a.watch(wctx)
		}()
	}
	return nil
}

// stop asks the agent to stop and, with the protocol, waits until its
// StopReply says the last pages are pushed (the streams keep moving
// meanwhile), at most until drainBy.
func (a *agent) stop(ctx context.Context, drainBy time.Time, sum *Summary) {
	if a.watchStop != nil {
		a.watchStop()
		a.watchDone.Wait()
	}
	a.tl.burst(context.WithoutCancel(ctx)) // the last probes, at the stop
	// ctx may be done already: the stop must go out anyway.
	sctx, cancel := context.WithDeadline(context.WithoutCancel(ctx), drainBy.Add(a.cfg.OrderTimeout))
	defer cancel()
	reply, err := a.sess.Stop(sctx, time.Until(drainBy))
	if err != nil {
		what := "the stop order was not sent"
		if a.protocol() {
			what = "the agent did not confirm the stop"
		}
		sum.Notes = append(sum.Notes, fmt.Sprintf("%s: %v", what, err))
	}
	if reply != nil {
		sum.AgentStats = reply.CPUs
		a.stats.Store(&reply.CPUs) // the progress line's last words are the final counters
	}
}

// abandon ends the conversation with an agent whose guest went away:
// no stop order, nothing more asked.
func (a *agent) abandon() {
	if a.watchStop != nil {
		a.watchStop()
		a.watchDone.Wait()
	}
	a.gone = true
}

// finish asks for the cmdlines, stores the final stats, saves OUT/meta and
// writes OUT/trace.dat.
func (a *agent) finish(ctx context.Context, sum *Summary) error {
	if !a.protocol() || a.set == nil {
		return nil
	}
	if a.gone {
		sum.Notes = append(sum.Notes, "no saved_cmdlines and no final counters: the guest went away; trace.dat names no processes")
	} else {
		mctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), a.cfg.DrainTimeout)
		errs, err := a.sess.Meta(mctx, session.MetaAfter, a.set)
		cancel()
		if err != nil {
			sum.Notes = append(sum.Notes, fmt.Sprintf("no saved_cmdlines: %v: trace.dat names no processes", err))
		}
		for _, e := range errs {
			sum.Notes = append(sum.Notes, "the agent could not send metadata: "+e)
		}
	}
	if len(sum.AgentStats) > 0 {
		a.set.CPUStats = map[int][]byte{}
		for _, c := range sum.AgentStats {
			a.set.CPUStats[int(c.CPU)] = session.StatsText(c)
		}
	}
	if err := a.save(sum); err != nil {
		return err
	}
	cpus, err := tracedat.CaptureCPUs(a.cfg.Out)
	if err != nil {
		return err
	}
	path := filepath.Join(a.cfg.Out, TraceDat)
	res, err := tracedat.WriteFile(path, a.set, cpus, a.cfg.TraceDatOptions, true)
	if err != nil {
		return err
	}
	for _, c := range res.CPUs {
		sum.TraceDatBadPages += c.BadPages
	}
	sum.TraceDat = path
	return nil
}

// discard removes the metadata of a capture that never started.
func (a *agent) discard() {
	if a != nil && a.set != nil {
		os.RemoveAll(filepath.Join(a.cfg.Out, MetaDir))
	}
}

// pageSize is the page size to cut and read the files with: the one the
// user gave, else the one of the header_page of the directory the agent
// streamed, else the one of its handshake, else the default.
func pageSize(cfg Config, a *agent) int {
	if cfg.PageSize > 0 {
		return cfg.PageSize
	}
	if l, ok := a.layout(); ok {
		return l.PageSize
	}
	if a.protocol() && a.sess.Hello().PageSize > 0 {
		return int(a.sess.Hello().PageSize)
	}
	return DefaultPageSize
}

// layout is the page layout of the agent's header_page, if it sent one
// that parses.
func (a *agent) layout() (ringbuf.Layout, bool) {
	if !a.protocol() || a.set == nil || len(a.set.HeaderPage) == 0 {
		return ringbuf.Layout{}, false
	}
	l, err := a.set.Layout()
	return l, err == nil
}

// streamed is the set of CPUs the agent streamed: those its final
// counters cover, else those its handshake listed; nil when unknown (the
// line protocol).
func (a *agent) streamed(sum *Summary) map[int]bool {
	if !a.protocol() {
		return nil
	}
	m := map[int]bool{}
	if len(sum.AgentStats) > 0 {
		for _, c := range sum.AgentStats {
			m[int(c.CPU)] = true
		}
		return m
	}
	for _, cpu := range a.sess.Hello().CPUs {
		m[int(cpu)] = true
	}
	return m
}

// liveStats is the last Stats for the progress line, or nil.
func (a *agent) liveStats() []wire.CPUStats {
	if a == nil {
		return nil
	}
	if p := a.stats.Load(); p != nil {
		return *p
	}
	return nil
}

var errNoStart = errors.New("settings need Config.Start")

// bytesMoved is what the guest's streams moved so far (0 when unknown).
func (a *agent) bytesMoved() int64 {
	if a.activity == nil {
		return 0
	}
	return a.activity()
}
