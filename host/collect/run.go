package collect

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/vtrace/vtrace/host/fifo"
	"github.com/vtrace/vtrace/host/session"
	"github.com/vtrace/vtrace/internal/sys"
	"github.com/vtrace/vtrace/proto/ringbuf"
)

// Phases of a capture, seen by every stream.
const (
	phaseRun int32 = iota
	phaseDrain
	phaseAbort
)

// capture is the state shared by the streams of one guest's capture.
type capture struct {
	cfg     Config
	agent   *agent // nil without Start
	phase   atomic.Int32
	wake    *sys.Waker // woken once, when the phase leaves phaseRun
	settle  time.Duration
	drainBy atomic.Int64 // unix nanoseconds; set when draining starts
	onStart func()       // when not nil, called once the capture started (tests)
	life    *liveness
}

// Run collects until ctx is done, cfg.Duration passes, a stream fails or
// the guest goes away (ErrGuestGone), then drains the FIFOs and returns
// what was saved. The Summary is valid (and worth printing) even when err
// is not nil, unless nothing was opened.
func Run(ctx context.Context, cfg Config) (Summary, error) { return run(ctx, cfg, nil) }

// run is Run calling onStart, when not nil, once the capture started: the
// agent answered the start order, or at once without Start.
func run(ctx context.Context, cfg Config, onStart func()) (Summary, error) {
	cfg = withDefaults(cfg)
	var host *hostRecording
	if cfg.Timeline != nil {
		host = newHostRecording(*cfg.Timeline, cfg.Out)
	}
	g, err := prepare(ctx, cfg, host)
	if err != nil {
		return g.sum, err
	}
	g.c.onStart = onStart
	if err := host.start(g.tl); err != nil {
		g.abandon()
		return g.sum, err
	}
	g.launch()
	stopProgress := startProgress(cfg.Progress, cfg.ProgressEvery, []*guestRun{g}, false)
	runErr := g.start(ctx)
	if g.started {
		runErr = g.until(ctx, nil)
		g.stop(ctx, runErr)
	}
	g.wg.Wait()
	stopProgress()
	sum, err := g.finish(ctx, runErr)
	if g.started && host != nil {
		hostDat := host.finish([]*timeline{g.tl}, cfg.TraceDatOptions, &sum.Notes)
		if sum.Timeline != nil {
			sum.Timeline.HostDat = hostDat
		}
	}
	host.abort()
	return sum, err
}

// guestRun is one guest's capture, from its preparation to its summary.
type guestRun struct {
	name    string // in a capture of several guests; "" alone
	cfg     Config
	sum     Summary
	ag      *agent
	streams []*stream
	tl      *timeline
	c       *capture
	errs    chan error
	wg      sync.WaitGroup
	begin   time.Time
	started bool

	startSent, startAnswered time.Time // the start order went out, and was answered
	ended                    time.Time // the capture ended (the stop order, or the guest went away)
}

// prepare does everything before the start order: the handshake, the
// capture directory, the FIFOs (emptied of an earlier recording's pages),
// the metadata and the first clock probe. On error it leaves nothing
// open; the returned guestRun carries the summary so far either way.
func prepare(ctx context.Context, cfg Config, host *hostRecording) (*guestRun, error) {
	g := &guestRun{cfg: cfg, sum: Summary{Out: cfg.Out}}
	sum := &g.sum
	if !cfg.Start && !cfg.Settings.IsZero() {
		return g, fmt.Errorf("check the recording's settings: %w: without it collect does not talk to the agent", errNoStart)
	}
	if !cfg.Start && cfg.Timeline != nil {
		return g, fmt.Errorf("check --host-events: %w: the clocks are compared over the agent's control port", errNoStart)
	}
	if cfg.PageSize > 0 {
		l := ringbuf.DefaultLayout()
		l.PageSize = cfg.PageSize
		if err := l.Validate(); err != nil {
			return g, fmt.Errorf("check the page size: %w", err)
		}
	}
	cpus, err := fifo.TraceCPUs(cfg.Dir)
	if err != nil {
		return g, err
	}
	if cfg.Start {
		if g.ag, err = openAgent(ctx, cfg, sum); err != nil {
			return g, err
		}
	}
	fail := func(err error, streams bool) (*guestRun, error) {
		if streams {
			closeStreams(g.streams, true)
		}
		g.ag.discard()
		g.ag.close()
		return g, err
	}
	if err := prepareOut(cfg.Out, cfg.Force); err != nil {
		return fail(err, false)
	}
	if g.streams, err = openStreams(cfg, cpus, sum); err != nil {
		return fail(err, false)
	}
	if g.tl, err = openTimeline(ctx, cfg, g.ag, host, sum); err != nil {
		return fail(err, true)
	}
	if g.ag != nil {
		g.ag.tl = g.tl
	}
	if g.ag.protocol() {
		if err := g.ag.fetchMeta(ctx, sum); err != nil {
			return fail(err, true)
		}
	}
	if cfg.Start && !g.ag.recording() {
		// Before the start order: what the FIFOs hold is not this
		// recording's. (An agent that says it records refuses the start
		// order at once.)
		err := drainStale(g.streams, cfg.Settle, time.Now().Add(cfg.DrainTimeout))
		staleNotes(g.streams, sum)
		if err != nil {
			return fail(err, true)
		}
	}
	wake, err := sys.NewWaker()
	if err != nil {
		return fail(err, true)
	}
	g.c = &capture{cfg: cfg, agent: g.ag, wake: wake, life: newLiveness(cfg)}
	if cfg.Start {
		g.c.settle = cfg.Settle
	}
	if g.ag != nil {
		g.ag.life = g.c.life
		g.ag.activity = g.bytes
	}
	return g, nil
}

// abandon closes what prepare opened, for a capture that never starts.
func (g *guestRun) abandon() {
	closeStreams(g.streams, true)
	g.ag.discard()
	g.ag.close()
	g.c.wake.Close()
}

// bytes is what every stream of the guest moved so far.
func (g *guestRun) bytes() int64 {
	var n int64
	for _, s := range g.streams {
		n += s.written.Load()
	}
	return n
}

// launch starts moving the streams: one goroutine each.
func (g *guestRun) launch() {
	g.begin = time.Now()
	g.errs = make(chan error, len(g.streams))
	for _, s := range g.streams {
		g.wg.Add(1)
		go func() {
			defer g.wg.Done()
			if err := s.run(g.c); err != nil {
				g.errs <- err
			}
		}()
	}
}

// start sends the start order (with Start) and watches the guest's
// liveness from before it goes out. A start order that fails ends the
// capture: the streams abort. A guest that goes away while its start
// order is unanswered ends as one that went away mid-capture (until
// reports it): what arrived is kept and trace.dat written.
func (g *guestRun) start(ctx context.Context) error {
	c := g.c
	c.life.watch(g.cfg)
	if c.agent != nil {
		g.tl.markStart()
		g.startSent = time.Now()
		sctx, cancel := context.WithCancel(ctx)
		go func() {
			select {
			case <-c.life.gone:
				cancel()
			case <-sctx.Done():
			}
		}()
		err := c.agent.start(sctx, &g.sum)
		cancel()
		if err != nil && c.life.peerExited() {
			g.started = true
			return nil
		}
		if err != nil {
			c.life.close()
			drainBy := time.Now().Add(g.cfg.DrainTimeout)
			if c.agent.protocol() && !errors.Is(err, session.ErrAgent) {
				// The Start went out but its answer did not come in
				// (interrupted, timed out): the agent may be recording.
				// Stop it, the streams reading what it pushes meanwhile,
				// so that it does not keep its instance for nobody.
				c.agent.stop(ctx, drainBy, &g.sum)
			}
			c.end(phaseAbort, drainBy)
			return err
		}
		g.startAnswered = time.Now()
	}
	g.started = true
	if c.onStart != nil {
		c.onStart()
	}
	return nil
}

// until waits for the end of the capture: ctx done, cfg.Duration passed,
// stop closed (several guests), a stream failed or the guest went away.
// It returns the error that ended it (ErrGuestGone for a guest gone).
func (g *guestRun) until(ctx context.Context, stop <-chan struct{}) error {
	var timeout <-chan time.Time
	if g.cfg.Duration > 0 {
		t := time.NewTimer(g.cfg.Duration)
		defer t.Stop()
		timeout = t.C
	}
	select {
	case <-ctx.Done():
	case <-stop:
	case <-timeout:
	case err := <-g.errs:
		return err
	case <-g.c.life.gone:
		gone := g.c.life.what()
		g.sum.Gone = &gone
		return fmt.Errorf("%w %v into the capture: %s", ErrGuestGone, gone.At.Sub(g.begin).Round(100*time.Millisecond), gone.Why)
	}
	return nil
}

// stop sends the stop order (unless the guest went away) and switches the
// streams to draining, or aborting when err is a stream's failure.
func (g *guestRun) stop(ctx context.Context, err error) {
	c := g.c
	c.life.close()
	g.ended = time.Now()
	drainBy := time.Now().Add(g.cfg.DrainTimeout)
	if c.agent != nil {
		if g.sum.Gone != nil {
			c.agent.abandon()
		} else {
			// The drain's time runs from the stop: the streams keep
			// moving (phaseRun) until the agent says its last pages are
			// pushed.
			c.agent.stop(ctx, drainBy, &g.sum)
			drainBy = time.Now().Add(g.cfg.DrainTimeout)
		}
	}
	if err != nil && !errors.Is(err, ErrGuestGone) {
		c.end(phaseAbort, drainBy)
		return
	}
	c.end(phaseDrain, drainBy)
}

// end switches the streams to phase, draining until drainBy at most.
func (c *capture) end(phase int32, drainBy time.Time) {
	c.drainBy.Store(drainBy.UnixNano())
	c.phase.Store(phase)
	c.wake.Wake()
}

// finish runs once the streams are done: it cuts and scans the files and,
// for a capture that started, saves the metadata and writes trace.dat.
func (g *guestRun) finish(ctx context.Context, runErr error) (Summary, error) {
	defer g.c.wake.Close()
	defer g.ag.close()
	cfg, sum, streams, ag := g.cfg, &g.sum, g.streams, g.ag
	if !g.started && !slices.ContainsFunc(streams, func(s *stream) bool { return s.written.Load() > 0 }) {
		// Nothing was asked of the guest and nothing came: leave no
		// capture behind, so the next try needs no --force.
		closeStreams(streams, true)
		ag.discard()
		return *sum, runErr
	}
	if g.ended.IsZero() {
		g.ended = time.Now()
	}
	sum.Elapsed = g.ended.Sub(g.begin)
	if runErr == nil {
		select {
		case runErr = <-g.errs: // a stream failed while draining
		default:
		}
	}
	// The page size of the recording: known only now that the agent
	// has said which directory it streams (its header_page after Start).
	sum.PageSize = pageSize(cfg, ag)
	layout := ringbuf.DefaultLayout()
	if l, ok := ag.layout(); ok && l.PageSize == sum.PageSize {
		layout = l
	}
	layout.PageSize = sum.PageSize // validated: the user's above, the agent's by its parser
	if ferr := finish(streams, sum); runErr == nil {
		runErr = ferr
	}
	streamed := ag.streamed(sum)
	for _, s := range streams {
		c := CPU{CPU: s.cpu, File: s.file, Bytes: s.written.Load(), Dropped: s.dropped, Late: s.late, Stale: s.stale}
		c.Stats, c.ScanErr = ringbuf.ScanFileSkipping(layout, s.file, nil, func(b ringbuf.BadPage) {
			if len(c.Bad) < maxBadShown {
				c.Bad = append(c.Bad, b)
			}
		})
		c.NotStreamed = streamed != nil && !streamed[s.cpu] && c.Bytes == 0
		sum.CPUs = append(sum.CPUs, c)
	}
	if g.started {
		if g.tl != nil { // a timeline implies an agent
			g.tl.finish(sum, &ag.cfg.TraceDatOptions)
		}
		if err := ag.finish(ctx, sum); err != nil && runErr == nil {
			runErr = err
		}
	}
	return *sum, runErr
}
