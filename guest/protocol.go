package guest

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/vtrace/vtrace/internal/sys"
	"github.com/vtrace/vtrace/proto/control"
	"github.com/vtrace/vtrace/proto/wire"
)

// session is the control loop's side of the protocol: what the host said,
// and the answers. Only the control goroutine touches it.
type session struct {
	a      *Agent
	out    *ctlOut
	stop   <-chan struct{}  // Run's ctx is done: a wait for the host ends
	abort  <-chan struct{}  // Config.Abort: likewise
	spoken bool             // the host sent a sound frame: the agent may write
	tick   <-chan time.Time // Stats while recording, once spoken
	ticker *time.Ticker
}

// handle carries out one input. Only a failure of the streaming itself is
// returned (fatal); everything else is logged or answered.
func (s *session) handle(ctx context.Context, in input) error {
	a := s.a
	switch {
	case in.err != nil:
		a.log.Warn("control: unreadable frame, skipped", "err", in.err)
		return nil
	case in.frame != nil:
		s.spoken = true
		s.recording(a.rec != nil)
		if in.probe != nil {
			s.clockProbe(in.probe)
			return nil
		}
		return s.message(ctx, in.frame)
	case in.order.Long:
		a.log.Warn("control: line too long, ignored", "start", string(in.order.Garbage))
	case in.order.Garbage != nil:
		a.log.Warn("control: not an order, ignored", "line", string(in.order.Garbage))
	case in.order.Order == control.Start:
		err := a.StartWith(ctx, wire.Settings{})
		var se *settingsError
		if errors.As(err, &se) || errors.Is(err, errState) {
			return nil
		}
		if err == nil {
			s.recording(true)
		}
		return err
	case in.order.Order == control.Stop:
		_, err := a.StopWith(ctx)
		s.recording(false)
		if errors.Is(err, errState) {
			return nil
		}
		return err
	}
	return nil
}

// recording turns the Stats ticker on or off; it runs only for a host that
// speaks the protocol, so that a host of the line protocol makes no wake-ups.
func (s *session) recording(on bool) {
	switch {
	case on && s.ticker == nil && s.spoken:
		s.ticker = time.NewTicker(s.a.cfg.StatsEvery)
		s.tick = s.ticker.C
	case !on && s.ticker != nil:
		s.ticker.Stop()
		s.ticker, s.tick = nil, nil
	}
}

// send queues m for the host, once the host has spoken the protocol.
func (s *session) send(m wire.Message) error {
	if !s.spoken {
		return nil
	}
	return s.out.send(m, s.stop, s.abort)
}

// reply sends m; a host that stopped reading is logged, not fatal.
func (s *session) reply(m wire.Message) {
	if err := s.send(m); err != nil {
		s.a.log.Warn("control: reply dropped", "err", err)
	}
}

func (s *session) fail(id uint64, code wire.Code, format string, args ...any) {
	s.reply(&wire.Error{ID: id, Code: code, Message: wire.FreeText(fmt.Sprintf(format, args...))})
}

// message carries out one frame from the host.
func (s *session) message(ctx context.Context, f *wire.Frame) error {
	a := s.a
	m, err := wire.Decode(f)
	switch {
	case errors.Is(err, wire.ErrVersion) && f.Type == wire.TypeHello:
		s.fail(0, wire.CodeUnsupported, "hello in a version-%d frame: the agent reads versions %d to %d", f.Version, wire.MinVersion, wire.Version)
		return nil
	case errors.Is(err, wire.ErrUnknownType), errors.Is(err, wire.ErrVersion):
		a.log.Info("control: frame skipped", "err", err)
		s.fail(0, wire.CodeUnsupported, "%v", err)
		return nil
	case err != nil:
		a.log.Warn("control: bad message", "err", err)
		s.fail(0, wire.CodeMalformed, "%v", err)
		return nil
	}
	a.log.Debug("control: message", "type", m.Type())
	switch m := m.(type) {
	case *wire.Hello:
		s.hello(m)
	case *wire.MetaRequest:
		if err := a.sendMeta(m, s.send); err != nil {
			a.log.Warn("control: metadata answer cut short", "err", err)
		}
	case *wire.Start:
		err := a.StartWith(ctx, m.Settings)
		var se *settingsError
		switch {
		case errors.Is(err, errState):
			s.fail(m.ID, wire.CodeState, "start: already recording; stop first")
		case errors.As(err, &se):
			s.reply(&wire.StartReply{ID: m.ID, Error: wire.FreeText(err.Error())})
		case err != nil:
			s.reply(&wire.StartReply{ID: m.ID, Error: wire.FreeText(err.Error())})
			return err
		default:
			s.recording(true)
			s.reply(&wire.StartReply{ID: m.ID, CPUs: a.rec.cpus.wireCPUs(), Unstreamed: a.rec.cpus.unstreamed})
		}
	case *wire.Stop:
		stats, err := a.StopWith(ctx)
		s.recording(false)
		if errors.Is(err, errState) {
			s.fail(m.ID, wire.CodeState, "stop: not recording")
			return nil
		}
		r := &wire.StopReply{ID: m.ID, CPUs: stats}
		if err == nil {
			r.Unstreamed = a.last.Unstreamed
		}
		if err != nil {
			r.Error = wire.FreeText(err.Error())
		}
		s.reply(r)
		return err
	case *wire.StatusRequest:
		s.reply(s.status(m.ID))
	default:
		s.fail(0, wire.CodeUnsupported, "%v: not a message the agent takes", m.Type())
	}
	return nil
}

// hello answers the handshake: the version chosen and the guest's facts.
func (s *session) hello(m *wire.Hello) {
	a := s.a
	var v uint8
	for _, hv := range m.Versions {
		if hv >= wire.MinVersion && hv <= wire.Version && hv > v {
			v = hv
		}
	}
	if v == 0 {
		s.fail(m.ID, wire.CodeUnsupported, "no common protocol version: the host speaks %v, the agent %d to %d", m.Versions, wire.MinVersion, wire.Version)
		return
	}
	r := &wire.HelloReply{ID: m.ID, Version: v, AgentVersion: a.cfg.Version, PageSize: uint32(a.pageSizeNow()),
		Clock: currentClock(a.dirInUse()), State: a.state()}
	a.mu.Lock()
	if a.rec != nil {
		r.CPUs, r.Unstreamed = a.rec.cpus.wireCPUs(), a.unstreamedNow(a.rec)
	} else { // what the next Start streams
		p := a.plan(false)
		r.CPUs, r.Unstreamed = p.wireCPUs(), p.unstreamed
	}
	a.mu.Unlock()
	if rel, err := sys.Release(); err == nil {
		r.Release = wire.FreeText(rel)
	}
	if dir := a.dirInUse(); dir != a.root {
		r.Instance = filepath.Base(dir)
	}
	a.log.Debug("control: hello", "host", m.Host, "version", m.HostVersion, "chosen", v)
	s.reply(r)
}

func (a *Agent) state() wire.State {
	if a.rec != nil {
		return wire.StateRecording
	}
	return wire.StateIdle
}

// status describes the agent: the recording in progress with its current
// counters, or the last one with its final counters.
func (s *session) status(id uint64) *wire.Status {
	a := s.a
	st := &wire.Status{ID: id, State: a.state(), AgentVersion: a.cfg.Version}
	switch {
	case a.rec != nil:
		st.Settings = a.rec.settings
		cpus, err := readCPUStats(a.rec.dir, a.rec.cpus.workers)
		if err != nil {
			a.log.Warn("status: read stats", "err", err)
		}
		st.CPUs = a.rec.since(cpus)
		a.mu.Lock()
		st.Unstreamed = a.unstreamedNow(a.rec)
		a.mu.Unlock()
	case a.last != nil:
		st.Settings, st.CPUs, st.Unstreamed = a.last.Settings, a.last.CPUs, a.last.Unstreamed
	}
	return st
}

// stats sends the counters of the recording in progress.
func (s *session) stats() {
	a := s.a
	if a.rec == nil || !s.spoken {
		return
	}
	cpus, err := readCPUStats(a.rec.dir, a.rec.cpus.workers)
	if err != nil {
		a.log.Warn("stats: read", "err", err)
		return
	}
	if err := s.send(&wire.Stats{CPUs: a.rec.since(cpus)}); err != nil {
		a.log.Warn("stats: send", "err", err)
	}
}

// currentClock is the [bracketed] entry of dir's trace_clock.
func currentClock(dir string) string {
	b, err := os.ReadFile(filepath.Join(dir, "trace_clock"))
	if err != nil {
		return ""
	}
	_, rest, ok := strings.Cut(string(b), "[")
	if !ok {
		return ""
	}
	c, _, _ := strings.Cut(rest, "]")
	if !wire.ValidName(c) {
		return ""
	}
	return c
}
