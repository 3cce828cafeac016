package session

import (
	"context"
	"errors"
	"fmt"
	"os"
	"time"

	"github.com/vtrace/vtrace/proto/wire"
)

func (s *Session) nextID() uint64 {
	s.id++
	return s.id
}

// write writes b in one write: frames up to PIPE_BUF are atomic.
func (s *Session) write(b []byte, what string) error {
	s.mu.Lock()
	in := s.in // Close may clear s.in meanwhile; the *os.File stays valid
	s.mu.Unlock()
	if in == nil {
		return fmt.Errorf("send %s: the control channel is closed", what)
	}
	in.SetWriteDeadline(time.Now().Add(s.opts.ReplyTimeout))
	if _, err := in.Write(b); err != nil {
		if errors.Is(err, os.ErrDeadlineExceeded) {
			return fmt.Errorf("send %s to %s: the channel stayed full for %v: nobody reads it", what, in.Name(), s.opts.ReplyTimeout)
		}
		return fmt.Errorf("send %s: %w", what, err) // err names the FIFO
	}
	return nil
}

func (s *Session) send(m wire.Message) error {
	b, err := wire.AppendMessage(nil, m)
	if err != nil {
		return err
	}
	return s.write(b, m.Type().String())
}

// recv returns the next message from the agent, or in ferr a frame that
// could not be read (the stream goes on), or in err why nothing more will
// come before deadline (ErrTimeout, a cancelled ctx, a closed Session).
// Stats are handled here and not returned; unknown types are skipped.
func (s *Session) recv(ctx context.Context, deadline time.Time) (msg wire.Message, ferr, err error) {
	for {
		for len(s.items) > 0 {
			it := s.items[0]
			s.items = s.items[1:]
			switch {
			case it.Err != nil:
				return nil, it.Err, nil
			case it.Frame == nil:
				continue // text: agents send none; ignore it
			}
			m, err := wire.Decode(it.Frame)
			if errors.Is(err, wire.ErrUnknownType) {
				continue
			}
			if err != nil {
				return nil, err, nil
			}
			if st, ok := m.(*wire.Stats); ok {
				s.stats = st.CPUs
				if s.onStats != nil {
					s.onStats(st.CPUs)
				}
				continue
			}
			return m, nil, nil
		}
		n, err := s.read(ctx, deadline)
		if n > 0 {
			s.items = s.demux.Feed(s.buf[:n])
		}
		if err != nil {
			return nil, nil, err
		}
	}
}

// read reads once from .out, waiting until deadline. A done ctx or Close
// interrupts it.
func (s *Session) read(ctx context.Context, deadline time.Time) (int, error) {
	s.mu.Lock()
	if s.out == nil || s.cancelled {
		s.mu.Unlock()
		return 0, errors.New("read the control channel: session closed")
	}
	out := s.out
	// Every read sets its own deadline: an earlier read's cancellation
	// (below) may have left one in the past.
	out.SetReadDeadline(deadline)
	s.mu.Unlock()
	interrupted := make(chan struct{})
	stop := context.AfterFunc(ctx, func() {
		defer close(interrupted)
		s.mu.Lock()
		if s.out != nil {
			s.out.SetReadDeadline(time.Unix(1, 0))
		}
		s.mu.Unlock()
	})
	n, err := out.Read(s.buf)
	s.stamp()
	if n > 0 {
		s.heard.Store(time.Now().UnixNano())
	}
	if !stop() {
		// The callback has started: let it finish, or it could set its
		// past deadline during the next read (a Stop right after Watch)
		// and make that read time out at once.
		<-interrupted
	}
	switch {
	case err == nil:
		return n, nil
	case ctx.Err() != nil:
		return n, context.Cause(ctx)
	case errors.Is(err, os.ErrDeadlineExceeded):
		s.mu.Lock()
		closed := s.cancelled
		s.mu.Unlock()
		if closed {
			return n, errors.New("read the control channel: session closed")
		}
		return n, ErrTimeout
	}
	return n, err // "read DIR/agent-ctl-path.out: ..."
}

// note remembers a frame that was skipped.
func (s *Session) note(err error) {
	s.skipped++
	s.problem = err
}

// call sends req (whose id is id) and waits for the reply of type want
// with the same id. An Error for id (or for no id) is returned as an error.
func (s *Session) call(ctx context.Context, req wire.Message, id uint64, want wire.Type, timeout time.Duration) (wire.Message, error) {
	if s.LineProtocol() {
		return nil, fmt.Errorf("send %v: %w", req.Type(), ErrLineProtocol)
	}
	if err := s.send(req); err != nil {
		return nil, err
	}
	deadline := time.Now().Add(timeout)
	for {
		msg, ferr, err := s.recv(ctx, deadline)
		if errors.Is(err, ErrTimeout) {
			err = fmt.Errorf("wait for the agent's %v: %w within %v: the agent answered the handshake but not this; "+
				"its log in the guest says why (journalctl -u vtrace-agent, /var/log/vtrace-agent.log, or its stderr)", want, ErrTimeout, timeout)
			if s.problem != nil {
				err = fmt.Errorf("%w (last unreadable frame: %v)", err, s.problem)
			}
			return nil, err
		}
		if err != nil {
			return nil, fmt.Errorf("wait for the agent's %v: %w", want, err)
		}
		if ferr != nil {
			s.note(ferr)
			continue
		}
		if e, ok := msg.(*wire.Error); ok && (e.ID == id || e.ID == 0) {
			return nil, agentError(e) // the caller names the request
		}
		if msg.Type() == want && wire.ID(msg) == id {
			return msg, nil
		}
		s.note(fmt.Errorf("unexpected %v", msg.Type()))
	}
}

func agentError(e *wire.Error) error {
	what := map[wire.Code]string{wire.CodeMalformed: "malformed request", wire.CodeUnsupported: "unsupported",
		wire.CodeState: "not possible now", wire.CodeInternal: "internal error"}[e.Code]
	if what == "" {
		what = "internal error"
	}
	return fmt.Errorf("%w (%s): %s", ErrAgent, what, e.Message)
}
