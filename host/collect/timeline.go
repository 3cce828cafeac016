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

// timeline is a capture's side of it.
type timeline struct {
	cfg    Timeline
	out    string
	sess   *session.Session
	clock  sys.TraceClock
	rec    *hosttrace.Recorder
	record timesync.Record
	bursts int
	failed error // the first burst that failed; later ones are not tried
	vcpus  []qmp.VCPU
	notes  *[]string
}

// openTimeline decides, once the agent answered the handshake, whether
// the capture can have a timeline, and with which trace clock: the one
// --clock names, else mono for a recording in the agent's instance, else
// (no settings: the guest's tracing as it is) the guest's current clock
// when user space can read it. A single probe checks that the agent
// answers. The settings of ag may get the clock.
func openTimeline(ctx context.Context, cfg Config, ag *agent, sum *Summary) (*timeline, error) {
	if cfg.Timeline == nil {
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
	tl := &timeline{cfg: cfg.Timeline.withDefaults(), out: cfg.Out, sess: ag.sess, clock: clock, notes: &sum.Notes}
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
	tl.record = timesync.Record{Clock: name, HostTraceID: traceID(), GuestTraceID: traceID()}
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

// startHost starts recording the host's events into OUT/host.
func (t *timeline) startHost() error {
	if t == nil {
		return nil
	}
	var err error
	t.rec, err = hosttrace.Start(hosttrace.Config{Tracefs: t.cfg.HostTracefs, Events: t.cfg.HostEvents,
		Clock: t.clock.Name, BufferKiB: t.cfg.HostBufferKiB, Out: filepath.Join(t.out, HostDir)})
	return err
}

// abort ends the host's recording of a capture that did not start.
func (t *timeline) abort() {
	if t != nil && t.rec != nil {
		t.rec.Abort()
		t.rec = nil
	}
}

// burst sends one burst of probes and keeps their samples. A burst that
// fails is noted once, and no more are tried.
func (t *timeline) burst(ctx context.Context) {
	if t == nil || t.failed != nil {
		return
	}
	opts := session.ProbeOptions{Clock: t.clock, Count: t.cfg.Probes}
	if t.cfg.Markers && t.rec != nil {
		opts.Mark = func(id uint64, what string) {
			t.rec.Mark(fmt.Sprintf("vtrace-clock probe=%d %s\n", id, what))
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

// watch reads the agent's Stats while recording, with a burst of probes
// at once and every SyncInterval; without a timeline it only reads.
func (a *agent) watch(ctx context.Context) {
	if a.tl == nil {
		a.sess.Watch(ctx)
		return
	}
	for ctx.Err() == nil {
		a.tl.burst(ctx)
		wctx, cancel := context.WithTimeout(ctx, a.tl.cfg.SyncInterval)
		err := a.sess.Watch(wctx)
		cancel()
		if err != nil {
			return
		}
	}
}

// finish stops the host's recording, fits the probes, and writes
// OUT/clock.json and OUT/host.dat; the guest's trace.dat options go into
// opts. Failures are notes: the guest's capture stands on its own.
func (t *timeline) finish(sum *Summary, opts *tracedat.Options) {
	if t == nil || t.rec == nil {
		return
	}
	rec := t.rec
	t.rec = nil
	ts := &TimelineSummary{Clock: t.clock.Name, Probes: len(t.record.Probes), VCPUs: t.vcpus}
	sum.Timeline = ts
	note := func(format string, args ...any) { sum.Notes = append(sum.Notes, fmt.Sprintf(format, args...)) }
	set, err := rec.Stop()
	if err != nil {
		note("no host.dat: %v", err)
		return
	}
	hostDir := filepath.Join(t.out, HostDir)
	if err := meta.Save(set, filepath.Join(hostDir, MetaDir)); err != nil {
		note("no host.dat: %v", err)
		return
	}
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
	cpus, err := tracedat.CaptureCPUs(hostDir)
	if err != nil {
		note("no host.dat: %v", err)
		return
	}
	hopts := *opts
	hopts.Timeline = hostOptions(&t.record)
	path := filepath.Join(t.out, HostDat)
	if _, err := tracedat.WriteFile(path, set, cpus, hopts, true); err != nil {
		note("no host.dat: %v", err)
		return
	}
	ts.HostDat = path
}

// write prints the timeline's lines of a summary.
func (ts *TimelineSummary) write(w io.Writer, traceDat string) {
	if ts == nil {
		return
	}
	if f := ts.Fit; f != nil {
		fmt.Fprintf(w, "clock %s: guest − host %s at the start, drift %+.3f ppm (%+.1f µs a minute), uncertainty ±%.1f µs (half the best round trip), %d probes\n",
			ts.Clock, time.Duration(int64(f.Offset)), f.Drift*1e6, f.Drift*60e6, f.Uncertainty()/1e3, ts.Probes)
	}
	if ts.HostDat != "" {
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

// hostOptions are host.dat's options of a timeline: TRACEID, and GUEST
// when the vCPU threads are known.
func hostOptions(r *timesync.Record) *tracedat.Timeline {
	tl := &tracedat.Timeline{TraceID: r.HostTraceID}
	if len(r.VCPUs) > 0 {
		g := tracedat.Guest{Name: r.Guest, TraceID: r.GuestTraceID}
		for _, v := range r.VCPUs {
			g.VCPUs = append(g.VCPUs, tracedat.VCPU{CPU: v.CPU, TID: v.Thread})
		}
		tl.Guests = []tracedat.Guest{g}
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
	r, err = timesync.Load(filepath.Dir(filepath.Clean(dir)))
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	return hostOptions(r), nil
}
