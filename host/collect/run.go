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

// capture is the state shared by the streams of one Run.
type capture struct {
	cfg     Config
	agent   *agent // nil without Start
	phase   atomic.Int32
	wake    *sys.Waker // woken once, when the phase leaves phaseRun
	settle  time.Duration
	drainBy atomic.Int64 // unix nanoseconds; set when draining starts
	onStart func()       // when not nil, called once the capture started (tests)
}

// Run collects until ctx is done, cfg.Duration passes or a stream fails,
// then drains the FIFOs and returns what was saved. The Summary is valid
// (and worth printing) even when err is not nil, unless nothing was opened.
func Run(ctx context.Context, cfg Config) (Summary, error) { return run(ctx, cfg, nil) }

// run is Run calling onStart, when not nil, once the capture started: the
// agent answered the start order, or at once without Start.
func run(ctx context.Context, cfg Config, onStart func()) (Summary, error) {
	cfg = withDefaults(cfg)
	sum := Summary{Out: cfg.Out}
	if !cfg.Start && !cfg.Settings.IsZero() {
		return sum, fmt.Errorf("check the recording's settings: %w: without it collect does not talk to the agent", errNoStart)
	}
	if !cfg.Start && cfg.Timeline != nil {
		return sum, fmt.Errorf("check --host-events: %w: the clocks are compared over the agent's control port", errNoStart)
	}
	if cfg.PageSize > 0 {
		l := ringbuf.DefaultLayout()
		l.PageSize = cfg.PageSize
		if err := l.Validate(); err != nil {
			return sum, fmt.Errorf("check the page size: %w", err)
		}
	}
	cpus, err := fifo.TraceCPUs(cfg.Dir)
	if err != nil {
		return sum, err
	}
	var ag *agent
	if cfg.Start {
		if ag, err = openAgent(ctx, cfg, &sum); err != nil {
			return sum, err
		}
		defer ag.close()
	}
	if err := prepareOut(cfg.Out, cfg.Force); err != nil {
		return sum, err
	}
	streams, err := openStreams(cfg, cpus, &sum)
	if err != nil {
		return sum, err
	}
	tl, err := openTimeline(ctx, cfg, ag, &sum)
	if err != nil {
		closeStreams(streams, true)
		return sum, err
	}
	if ag != nil {
		ag.tl = tl
	}
	if ag.protocol() {
		if err := ag.fetchMeta(ctx, &sum); err != nil {
			closeStreams(streams, true)
			ag.discard()
			return sum, err
		}
	}
	if cfg.Start && !ag.recording() {
		// Before the start order: what the FIFOs hold is not this
		// recording's. (An agent that says it records refuses the start
		// order at once.)
		err := drainStale(streams, cfg.Settle, time.Now().Add(cfg.DrainTimeout))
		staleNotes(streams, &sum)
		if err != nil {
			closeStreams(streams, true)
			ag.discard()
			return sum, err
		}
	}
	wake, err := sys.NewWaker()
	if err != nil {
		closeStreams(streams, true)
		ag.discard()
		return sum, err
	}
	defer wake.Close()

	if err := tl.startHost(); err != nil {
		closeStreams(streams, true)
		ag.discard()
		return sum, err
	}
	c := &capture{cfg: cfg, agent: ag, wake: wake, onStart: onStart}
	if cfg.Start {
		c.settle = cfg.Settle
	}
	begin := time.Now()
	errs := make(chan error, len(streams))
	var wg sync.WaitGroup
	for _, s := range streams {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := s.run(c); err != nil {
				errs <- err
			}
		}()
	}
	progressDone := make(chan struct{})
	stopProgress := make(chan struct{})
	go func() {
		defer close(progressDone)
		progress(cfg, streams, ag.liveStats, begin, stopProgress)
	}()

	started, runErr := c.wait(ctx, errs, &sum)
	if !started {
		tl.abort()
	}

	wg.Wait()
	close(stopProgress)
	<-progressDone
	if !started && !slices.ContainsFunc(streams, func(s *stream) bool { return s.written.Load() > 0 }) {
		// Nothing was asked of the guest and nothing came: leave no
		// capture behind, so the next try needs no --force.
		closeStreams(streams, true)
		ag.discard()
		return sum, runErr
	}
	sum.Elapsed = time.Since(begin)
	if runErr == nil {
		select {
		case runErr = <-errs: // a stream failed while draining
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
	if ferr := finish(streams, &sum); runErr == nil {
		runErr = ferr
	}
	streamed := ag.streamed(&sum)
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
	if started {
		if tl != nil { // tl implies an agent
			tl.finish(&sum, &ag.cfg.TraceDatOptions)
		}
		if err := ag.finish(ctx, &sum); err != nil && runErr == nil {
			runErr = err
		}
	}
	return sum, runErr
}

// wait sends the start order if asked, waits for the end of the capture,
// sends the stop order, and switches the streams to draining (or aborting
// when something failed). It returns whether the capture started (false
// only when the start order could not be sent) and the error that ended it.
func (c *capture) wait(ctx context.Context, errs <-chan error, sum *Summary) (bool, error) {
	cfg := c.cfg
	var drainBy time.Time
	end := func(phase int32) {
		if drainBy.IsZero() {
			drainBy = time.Now().Add(cfg.DrainTimeout)
		}
		c.drainBy.Store(drainBy.UnixNano())
		c.phase.Store(phase)
		c.wake.Wake()
	}
	if c.agent != nil {
		if err := c.agent.start(ctx, sum); err != nil {
			if c.agent.protocol() && !errors.Is(err, session.ErrAgent) {
				// The Start went out but its answer did not come in
				// (interrupted, timed out): the agent may be recording.
				// Stop it, the streams reading what it pushes meanwhile,
				// so that it does not keep its instance for nobody.
				drainBy = time.Now().Add(cfg.DrainTimeout)
				c.agent.stop(ctx, drainBy, sum)
			}
			end(phaseAbort)
			return false, err
		}
	}
	if c.onStart != nil {
		c.onStart()
	}
	var timeout <-chan time.Time
	if cfg.Duration > 0 {
		t := time.NewTimer(cfg.Duration)
		defer t.Stop()
		timeout = t.C
	}
	var err error
	select {
	case <-ctx.Done():
	case <-timeout:
	case err = <-errs:
	}
	if c.agent != nil {
		// The drain's time runs from the stop: the streams keep moving
		// (phaseRun) until the agent says its last pages are pushed.
		drainBy = time.Now().Add(cfg.DrainTimeout)
		c.agent.stop(ctx, drainBy, sum)
	}
	if err != nil {
		end(phaseAbort)
		return true, err
	}
	end(phaseDrain)
	return true, nil
}
