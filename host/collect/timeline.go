package collect

// One timeline for host and guest (Config.Timeline): the host's own events
// recorded beside the guest's (host/hosttrace into OUT/host, then
// OUT/host.dat), clock probes at the start, every SyncInterval and at the
// stop (host/session's ProbeClock), the fit (host/timesync, OUT/clock.json)
// and the options that let trace-cmd merge the two files (host/tracedat:
// TRACEID and TIME_SHIFT in trace.dat, TRACEID and GUEST in host.dat).

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/vtrace/vtrace/host/hosttrace"
	"github.com/vtrace/vtrace/host/meta"
	"github.com/vtrace/vtrace/host/qmp"
	"github.com/vtrace/vtrace/host/session"
	"github.com/vtrace/vtrace/host/timesync"
	"github.com/vtrace/vtrace/host/tracedat"
	"github.com/vtrace/vtrace/internal/sys"
)

// Defaults of Timeline.
const (
	DefaultSyncInterval = time.Second
	DefaultProbes       = 16
	defaultClock        = "mono"
)

// What a capture with a timeline holds besides the guest's files.
const (
	HostDir = "host"     // OUT/host: the host's cpuN.raw and meta/
	HostDat = "host.dat" // OUT/host.dat
)

// Timeline asks for the host's own events, recorded at the same time as
// the guest's and placed with them on one timeline. It needs Start and a
// vtrace agent that answers clock probes; with another agent the capture
// is the guest's alone and a note says why.
type Timeline struct {
	HostEvents    []string      // "system" or "system:event" on the host
	HostBufferKiB uint64        // the host's ring buffer per CPU (0: the kernel's default)
	HostTracefs   string        // the host's tracefs ("": found)
	SyncInterval  time.Duration // between bursts of probes while recording (DefaultSyncInterval)
	Probes        int           // probes per burst (DefaultProbes)
	// Markers writes "vtrace-clock probe=ID send" and "... answer" into
	// the host's trace around every probe and has the agent write "...
	// recv" into the guest's as it reads one: the merged timeline shows
	// each guest marker between its two host markers.
	Markers bool
	// Guest names the guest in host.dat's GUEST option.
	Guest string
	// VCPUs, when not nil, says which host thread runs each vCPU (QMP's
	// query-cpus-fast); without it host.dat has no GUEST option.
	VCPUs func(context.Context) ([]qmp.VCPU, error)
}

// TimelineSummary is what a capture with a timeline wrote.
type TimelineSummary struct {
	Clock   string
	HostDat string
	Probes  int
	Fit     *timesync.Fit // nil without answered probes
	VCPUs   []qmp.VCPU
}

// timeline is one guest's side of it.
type timeline struct {
	cfg    Timeline
	out    string // the guest's capture directory: clock.json goes there
	sess   *session.Session
	clock  sys.TraceClock
	host   *hostRecording
	record timesync.Record
	bursts int
	failed error // the first burst that failed; later ones are not tried
	vcpus  []qmp.VCPU
	notes  *[]string
}

// hostRecording is the host's side of a timeline: one recording of the
// host's events that every guest of the capture is placed against, saved
// as OUT/host and written as OUT/host.dat with a GUEST option per guest.
type hostRecording struct {
	cfg     Timeline
	out     string
	traceID uint64
	clock   string // the trace clock of the recording, once started
	rec     *hosttrace.Recorder
}

func newHostRecording(cfg Timeline, out string) *hostRecording {
	return &hostRecording{cfg: cfg.withDefaults(), out: out, traceID: traceID()}
}

// openTimeline decides, once the agent answered the handshake, whether
// the capture can have a timeline, and with which trace clock: the one
// --clock names, else mono for a recording in the agent's instance, else
// (no settings: the guest's tracing as it is) the guest's current clock
// when user space can read it. A single probe checks that the agent
// answers. The settings of ag may get the clock.
func openTimeline(ctx context.Context, cfg Config, ag *agent, host *hostRecording, sum *Summary) (*timeline, error) {
	if cfg.Timeline == nil || host == nil {
		return nil, nil
	}
	note := func(why string) {
		n := "--host-events: no merged timeline: " + why + "; the capture is the guest's alone"
		if cfg.Log != nil {
			fmt.Fprintln(cfg.Log, n)
		}
		sum.Notes = append(sum.Notes, n)
	}
	if !ag.protocol() {
		note("no vtrace agent answered the handshake (the kernel's C agent, or an agent of the line protocol only), and only a vtrace agent can read the guest's trace clock for the host")
		return nil, nil
	}
	s := &ag.cfg.Settings
	name := s.Clock
	switch {
	case name != "":
	case s.IsZero():
		name = ag.sess.Hello().Clock
		if _, err := sys.TraceClockByName(name); err != nil {
			return nil, fmt.Errorf("--host-events: the guest records its own buffer with the %s clock, which user space cannot read: give --events (the agent then records them in its own instance with the %s clock) or have the guest trace with %s",
				name, defaultClock, strings.Join(sys.UserClockNames(), ", "))
		}
	default:
		name = defaultClock
	}
	clock, err := sys.TraceClockByName(name)
	if err != nil {
		return nil, fmt.Errorf("--host-events: %w: merging needs a clock both sides read", err)
	}
	tl := &timeline{cfg: cfg.Timeline.withDefaults(), out: cfg.Out, sess: ag.sess, clock: clock, host: host, notes: &sum.Notes}
	if _, err := ag.sess.ProbeClock(ctx, session.ProbeOptions{Clock: clock}); err != nil {
		if errors.Is(err, session.ErrNoClockProbes) {
			note("the guest's vtrace agent is older than clock probes; update it")
			return nil, nil
		}
		return nil, fmt.Errorf("--host-events: %w", err)
	}
	if s.Clock == "" && !s.IsZero() {
		s.Clock = name
	}
	tl.record = timesync.Record{Clock: name, HostTraceID: host.traceID, GuestTraceID: traceID()}
	tl.record.Guest = tl.cfg.Guest
	if tl.cfg.VCPUs != nil {
		if tl.vcpus, err = tl.cfg.VCPUs(ctx); err != nil {
			sum.Notes = append(sum.Notes, fmt.Sprintf("host.dat maps no vCPU to its host thread: %v", err))
		}
		for _, v := range tl.vcpus {
			tl.record.VCPUs = append(tl.record.VCPUs, timesync.VCPU{CPU: v.CPU, Thread: v.Thread})
		}
	}
	return tl, nil
}

func (t Timeline) withDefaults() Timeline {
	if t.SyncInterval <= 0 {
		t.SyncInterval = DefaultSyncInterval
	}
	if t.Probes <= 0 {
		t.Probes = DefaultProbes
	}
	if t.Guest == "" {
		t.Guest = "guest"
	}
	return t
}

// traceID is a random, non-zero trace id.
func traceID() uint64 {
	for {
		if id := rand.Uint64(); id != 0 {
			return id
		}
	}
}

// start starts recording the host's events into OUT/host, with the trace
// clock of the guests' timelines (nil ones have none). A timeline whose
// clock differs from the first one's is left out, with a note: one host
// recording has one clock. Without any timeline it does nothing.
func (h *hostRecording) start(tls ...*timeline) error {
	if h == nil {
		return nil
	}
	for _, t := range tls {
		if t == nil {
			continue
		}
		if h.clock == "" {
			h.clock = t.clock.Name
		}
		if t.clock.Name != h.clock {
			*t.notes = append(*t.notes, fmt.Sprintf("--host-events: no merged timeline for this guest: it records with the %s clock, the host with the %s clock of the first guest; give --clock", t.clock.Name, h.clock))
			t.host = nil
		}
	}
	if h.clock == "" {
		return nil
	}
	var err error
	h.rec, err = hosttrace.Start(hosttrace.Config{Tracefs: h.cfg.HostTracefs, Events: h.cfg.HostEvents,
		Clock: h.clock, BufferKiB: h.cfg.HostBufferKiB, Out: filepath.Join(h.out, HostDir)})
	return err
}

// abort ends a host recording that finish did not write.
func (h *hostRecording) abort() {
	if h != nil && h.rec != nil {
		h.rec.Abort()
		h.rec = nil
	}
}

// mark writes text into the host's trace, if it records.
func (t *timeline) mark(text string) {
	if t != nil && t.host != nil && t.host.rec != nil {
		t.host.rec.Mark(text)
	}
}

// markStart writes "vtrace-start guest=NAME" into the host's trace right
// before the guest's start order goes out.
func (t *timeline) markStart() {
	if t != nil {
		t.mark(fmt.Sprintf("vtrace-start guest=%s\n", t.record.Guest))
	}
}

// burst sends one burst of probes and keeps their samples. A burst that
// fails is noted once, and no more are tried.
func (t *timeline) burst(ctx context.Context) {
	if t == nil || t.failed != nil {
		return
	}
	opts := session.ProbeOptions{Clock: t.clock, Count: t.cfg.Probes}
	if t.cfg.Markers && t.host != nil && t.host.rec != nil {
		opts.Mark = func(id uint64, what string) {
			t.mark(fmt.Sprintf("vtrace-clock probe=%d %s\n", id, what))
		}
	}
	got, err := t.sess.ProbeClock(ctx, opts)
	for _, p := range got {
		p.Burst = t.bursts
		t.record.Probes = append(t.record.Probes, p)
	}
	t.bursts++
	if err != nil && ctx.Err() == nil {
		t.failed = err
		*t.notes = append(*t.notes, fmt.Sprintf("clock probes stopped after %d bursts: %v", t.bursts, err))
	}
}

// watchStep bounds each wait for the agent's frames while recording, so
// that bursts and the liveness check come on time.
const watchStep = time.Second

// watch reads the agent's Stats while recording, with a burst of probes
// at once and every SyncInterval (with a timeline), and reports the agent
// gone when it stays silent and does not answer a status request
// (liveness.go).
func (a *agent) watch(ctx context.Context) {
	since := time.Now()
	lastBytes, lastMove := a.bytesMoved(), since
	var nextBurst time.Time
	for ctx.Err() == nil {
		step := watchStep
		if a.tl != nil {
			if !time.Now().Before(nextBurst) {
				a.tl.burst(ctx)
				nextBurst = time.Now().Add(a.tl.cfg.SyncInterval)
			}
			step = max(min(step, time.Until(nextBurst)), time.Millisecond)
		}
		wctx, cancel := context.WithTimeout(ctx, step)
		err := a.sess.Watch(wctx)
		cancel()
		if ctx.Err() != nil {
			return
		}
		if err != nil {
			a.life.report("the control channel broke: " + err.Error())
			return
		}
		if a.quietFor(since, &lastBytes, &lastMove) >= a.cfg.QuietCheck {
			if ok, err := a.answers(ctx); !ok {
				a.life.report(err.Error())
				return
			}
		}
	}
}

// finish fits the guest's probes and writes OUT/clock.json; the guest's
// trace.dat options go into opts. Failures are notes: the guest's capture
// stands on its own.
func (t *timeline) finish(sum *Summary, opts *tracedat.Options) {
	if t == nil || t.host == nil || t.host.rec == nil {
		return
	}
	ts := &TimelineSummary{Clock: t.clock.Name, Probes: len(t.record.Probes), VCPUs: t.vcpus}
	sum.Timeline = ts
	note := func(format string, args ...any) { sum.Notes = append(sum.Notes, fmt.Sprintf(format, args...)) }
	if fit, err := timesync.Solve(t.record.Probes); err != nil {
		note("no clock offset: %v: trace.dat keeps the guest's own times", err)
	} else {
		t.record.Fit = &fit
		ts.Fit = &fit
		if fit.Margin < 0 {
			note("clock fit: some probe lies %.0f ns outside the line: the guest's clock did not keep a steady rate against the host's", -fit.Margin)
		}
	}
	if err := t.record.Save(t.out); err != nil {
		note("%v", err)
	}
	opts.Timeline = guestOptions(&t.record)
}

// finish stops the host's recording and writes OUT/host.dat, with a GUEST
// option for each guest of tls (those that started) whose vCPU threads are
// known. It returns host.dat's path, or "" with a note why not.
func (h *hostRecording) finish(tls []*timeline, opts tracedat.Options, notes *[]string) string {
	if h == nil || h.rec == nil {
		return ""
	}
	rec := h.rec
	h.rec = nil
	note := func(format string, args ...any) { *notes = append(*notes, fmt.Sprintf(format, args...)) }
	set, err := rec.Stop()
	if err != nil {
		note("no host.dat: %v", err)
		return ""
	}
	hostDir := filepath.Join(h.out, HostDir)
	if err := meta.Save(set, filepath.Join(hostDir, MetaDir)); err != nil {
		note("no host.dat: %v", err)
		return ""
	}
	var records []*timesync.Record
	for _, t := range tls {
		if t != nil && t.host == h {
			records = append(records, &t.record)
		}
	}
	cpus, err := tracedat.CaptureCPUs(hostDir)
	if err != nil {
		note("no host.dat: %v", err)
		return ""
	}
	opts.Timeline = hostOptions(h.traceID, records)
	path := filepath.Join(h.out, HostDat)
	if _, err := tracedat.WriteFile(path, set, cpus, opts, true); err != nil {
		note("no host.dat: %v", err)
		return ""
	}
	return path
}

// write prints the clock-sync line of a summary.
func (ts *TimelineSummary) write(w io.Writer) {
	if ts == nil {
		return
	}
	if f := ts.Fit; f != nil {
		fmt.Fprintf(w, "clock %s: guest − host %s at the start, drift %+.3f ppm (%+.1f µs a minute), uncertainty ±%.1f µs (half the best round trip), %d probes\n",
			ts.Clock, time.Duration(int64(f.Offset)), f.Drift*1e6, f.Drift*60e6, f.Uncertainty()/1e3, ts.Probes)
	}
}

// writeHostDat prints where host.dat is and how to read it with the
// guest's trace.dat.
func (ts *TimelineSummary) writeHostDat(w io.Writer, traceDat string) {
	if ts != nil && ts.HostDat != "" {
		fmt.Fprintf(w, "wrote %s: trace-cmd report -i %s -i %s\n", ts.HostDat, ts.HostDat, traceDat)
	}
}

// isTimelineName reports whether name is one of the files a timeline adds
// to a capture directory.
func isTimelineName(name string) bool {
	return name == HostDir || name == HostDat || name == timesync.FileName
}

// guestOptions are trace.dat's options of a timeline: TRACEID, and
// TIME_SHIFT when there is a fit.
func guestOptions(r *timesync.Record) *tracedat.Timeline {
	tl := &tracedat.Timeline{TraceID: r.GuestTraceID}
	if r.Fit != nil {
		tl.Peer = r.HostTraceID
		for _, p := range r.Fit.Points(timesync.DefaultStep) {
			tl.Shift = append(tl.Shift, tracedat.ShiftPoint{Guest: p.Guest, Shift: p.Shift})
		}
	}
	return tl
}

// hostOptions are host.dat's options of a timeline: TRACEID, and a GUEST
// option for each guest whose vCPU threads are known.
func hostOptions(id uint64, records []*timesync.Record) *tracedat.Timeline {
	tl := &tracedat.Timeline{TraceID: id}
	for _, r := range records {
		if len(r.VCPUs) == 0 {
			continue
		}
		g := tracedat.Guest{Name: r.Guest, TraceID: r.GuestTraceID}
		for _, v := range r.VCPUs {
			g.VCPUs = append(g.VCPUs, tracedat.VCPU{CPU: v.CPU, TID: v.Thread})
		}
		tl.Guests = append(tl.Guests, g)
	}
	return tl
}

// TimelineOptions are the trace.dat options that put capture directory
// dir on the timeline it was recorded on: the guest's (dir holds
// clock.json) or the host's (dir is the OUT/host of such a capture). It
// returns nil for a capture without a timeline.
func TimelineOptions(dir string) (*tracedat.Timeline, error) {
	r, err := timesync.Load(dir)
	if err == nil {
		return guestOptions(r), nil
	}
	if !errors.Is(err, os.ErrNotExist) {
		return nil, err
	}
	if filepath.Base(filepath.Clean(dir)) != HostDir {
		return nil, nil
	}
	top := filepath.Dir(filepath.Clean(dir))
	r, err = timesync.Load(top)
	if err == nil {
		return hostOptions(r.HostTraceID, []*timesync.Record{r}), nil
	}
	if !errors.Is(err, os.ErrNotExist) {
		return nil, err
	}
	// A capture of several guests: OUT/NAME/clock.json for each.
	ents, err := os.ReadDir(top)
	if err != nil {
		return nil, err
	}
	var records []*timesync.Record
	for _, e := range ents {
		if !e.IsDir() || e.Name() == HostDir {
			continue
		}
		r, err := timesync.Load(filepath.Join(top, e.Name()))
		if errors.Is(err, os.ErrNotExist) {
			continue
		}
		if err != nil {
			return nil, err
		}
		if len(records) > 0 && r.HostTraceID != records[0].HostTraceID {
			continue // not recorded against this host trace
		}
		records = append(records, r)
	}
	if len(records) == 0 {
		return nil, nil
	}
	return hostOptions(records[0].HostTraceID, records), nil
}
