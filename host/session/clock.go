package session

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/vtrace/vtrace/host/timesync"
	"github.com/vtrace/vtrace/internal/sys"
	"github.com/vtrace/vtrace/proto/wire"
)

// ErrNoClockProbes: the agent does not answer clock probes (a vtrace agent
// older than them); there is no way to place its trace on the host's
// timeline.
var ErrNoClockProbes = errors.New("the agent does not answer clock probes")

// ProbeOptions say how to probe.
type ProbeOptions struct {
	Clock sys.TraceClock // read on both sides
	Count int            // probes, one at a time (1 when 0)
	// Timeout bounds the wait for each reply (ReplyTimeout when 0).
	Timeout time.Duration
	// Mark, when not nil, asks the agent for a marker on receipt and is
	// called right before each probe is stamped and written (what "send")
	// and right after its reply was read and stamped (what "answer"), to
	// write the host's own markers.
	Mark func(id uint64, what string)
}

// ProbeClock sends opts.Count clock probes one after another and returns
// their readings (docs/protocol.md, "Clock probes"). It stops at the first
// probe left unanswered or refused, or when ctx ends (after the probe in
// flight is answered), and returns those answered before.
func (s *Session) ProbeClock(ctx context.Context, opts ProbeOptions) ([]timesync.Probe, error) {
	if s.LineProtocol() {
		return nil, fmt.Errorf("probe the guest's clock: %w", ErrLineProtocol)
	}
	if opts.Count <= 0 {
		opts.Count = 1
	}
	if opts.Timeout <= 0 {
		opts.Timeout = s.opts.ReplyTimeout
	}
	s.probeClock = &opts.Clock
	defer func() { s.probeClock = nil }()
	out := make([]timesync.Probe, 0, opts.Count)
	for range opts.Count {
		if ctx.Err() != nil {
			return out, context.Cause(ctx)
		}
		// A probe sent is waited for (at most Timeout) even when ctx
		// ends meanwhile: its markers, when asked for, get their answer.
		c, err := s.probe(context.WithoutCancel(ctx), opts)
		if err != nil {
			return out, fmt.Errorf("probe the guest's %s clock: %w", opts.Clock.Name, err)
		}
		out = append(out, c)
	}
	return out, nil
}

// probe sends one ClockProbe and waits for its reply.
func (s *Session) probe(ctx context.Context, opts ProbeOptions) (timesync.Probe, error) {
	id := s.nextID()
	m := &wire.ClockProbe{ID: id, Clock: opts.Clock.Name, Mark: opts.Mark != nil}
	b, err := wire.AppendMessage(nil, m)
	if err != nil {
		return timesync.Probe{}, err
	}
	if opts.Mark != nil {
		opts.Mark(id, "send")
	}
	c := timesync.Probe{ID: id}
	if c.HostSent, err = opts.Clock.Now(); err != nil {
		return c, err
	}
	if err := s.write(b, m.Type().String()); err != nil {
		return c, err
	}
	deadline := time.Now().Add(opts.Timeout)
	for {
		msg, ferr, err := s.recv(ctx, deadline)
		if errors.Is(err, ErrTimeout) {
			return c, fmt.Errorf("no reply to probe %d: %w within %v", id, ErrTimeout, opts.Timeout)
		}
		if err != nil {
			return c, err
		}
		if ferr != nil {
			s.note(ferr)
			continue
		}
		switch r := msg.(type) {
		case *wire.ClockReply:
			if r.ID != id {
				continue // a late reply to an earlier probe
			}
			c.HostReceived = s.readAt
			if opts.Mark != nil {
				opts.Mark(id, "answer")
			}
			if r.Error != "" {
				return c, fmt.Errorf("%w: %s", ErrAgent, r.Error)
			}
			if r.Clock != opts.Clock.Name {
				return c, fmt.Errorf("the agent read clock %q for a probe of %q", r.Clock, opts.Clock.Name)
			}
			c.GuestReceived, c.GuestSent = int64(r.Received), int64(r.Sent)
			if c.GuestReceived <= 0 || c.GuestSent < c.GuestReceived || c.GuestSent > 1<<62 {
				return c, fmt.Errorf("the agent's readings %d and %d are not a time of its clock", r.Received, r.Sent)
			}
			return c, nil
		case *wire.Error:
			if r.ID == 0 && r.Code == wire.CodeUnsupported {
				return c, fmt.Errorf("%w: %s", ErrNoClockProbes, r.Message)
			}
			if r.ID == id || r.ID == 0 {
				return c, agentError(r)
			}
		default:
			s.note(fmt.Errorf("unexpected %v", msg.Type()))
		}
	}
}

// stamp reads the probe clock as a read from the agent returns, so that a
// reply's arrival is timed before it is decoded.
func (s *Session) stamp() {
	if s.probeClock != nil {
		s.readAt, _ = s.probeClock.Now()
	}
}
