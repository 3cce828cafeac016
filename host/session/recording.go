package session

import (
	"context"
	"fmt"
	"time"

	"github.com/vtrace/vtrace/host/orders"
	"github.com/vtrace/vtrace/proto/wire"
)

// Start asks the agent to record with settings and waits for its answer.
// In line-protocol mode it writes the bare start order, and settings must
// be empty (else ErrNoSettings). An agent recording already gives
// ErrRecording; any other refusal, ErrAgent.
func (s *Session) Start(ctx context.Context, settings wire.Settings) error {
	if s.LineProtocol() {
		if !settings.IsZero() {
			return fmt.Errorf("start recording with settings: %w on %s within %v, and %w",
				ErrLineProtocol, s.outDir, s.opts.HandshakeTimeout, ErrNoSettings)
		}
		return orders.Send(ctx, s.dir, orders.Start, s.opts.OpenTimeout)
	}
	if s.hello.State == wire.StateRecording {
		return fmt.Errorf("start recording: %w: %w (started by an earlier start, or by a collector that exited without stopping it)",
			ErrAgent, ErrRecording)
	}
	id := s.nextID()
	m, err := s.call(ctx, &wire.Start{ID: id, Settings: settings}, id, wire.TypeStartReply, s.opts.ReplyTimeout)
	if err != nil {
		return fmt.Errorf("start recording: %w", err)
	}
	if r := m.(*wire.StartReply); r.Error != "" {
		return fmt.Errorf("start recording: %w: %s", ErrAgent, r.Error)
	}
	return nil
}

// Stop asks the agent to stop and waits, at most timeout, for its
// StopReply, which it sends once its last pages are pushed: the data
// FIFOs must be read meanwhile. In line-protocol mode it writes the bare
// stop order and returns a nil reply.
func (s *Session) Stop(ctx context.Context, timeout time.Duration) (*wire.StopReply, error) {
	if s.LineProtocol() {
		return nil, orders.Send(ctx, s.dir, orders.Stop, s.opts.OpenTimeout)
	}
	if timeout <= 0 {
		timeout = s.opts.ReplyTimeout
	}
	id := s.nextID()
	m, err := s.call(ctx, &wire.Stop{ID: id}, id, wire.TypeStopReply, timeout)
	if err != nil {
		return nil, fmt.Errorf("stop recording: %w", err)
	}
	r := m.(*wire.StopReply)
	if r.Error != "" {
		return r, fmt.Errorf("stop recording: %w: %s", ErrAgent, r.Error)
	}
	return r, nil
}

// Status asks the agent what it is doing.
func (s *Session) Status(ctx context.Context) (*wire.Status, error) {
	if s.LineProtocol() {
		return nil, fmt.Errorf("ask for the agent's status: %w on %s within %v: %s; the kernel's C agent speaks only the line protocol, which has no status",
			ErrLineProtocol, s.outDir, s.opts.HandshakeTimeout, StartAgentHint)
	}
	id := s.nextID()
	m, err := s.call(ctx, &wire.StatusRequest{ID: id}, id, wire.TypeStatus, s.opts.ReplyTimeout)
	if err != nil {
		return nil, fmt.Errorf("ask for the agent's status: %w", err)
	}
	return m.(*wire.Status), nil
}

// Watch reads the channel until ctx is done, passing Stats to the
// function set with OnStats and skipping everything else. It returns nil
// when ctx is done, or why the channel cannot be read.
func (s *Session) Watch(ctx context.Context) error {
	if s.LineProtocol() {
		<-ctx.Done()
		return nil
	}
	for {
		_, ferr, err := s.recv(ctx, time.Time{})
		if ctx.Err() != nil {
			return nil
		}
		if err != nil {
			return err
		}
		if ferr != nil {
			s.note(ferr)
		}
	}
}
