package guest

// Clock probes (docs/protocol.md, "Clock probes"): the host measures the
// offset between the guest's trace clock and its own. The control reader
// reads the clock the moment a probe comes off the port (receiveProbe);
// the control loop answers (clockProbe), and the writer goroutine reads
// the clock again as it writes the reply (sendLate).

import (
	"fmt"
	"os"
	"path/filepath"

	"github.com/vtrace/vtrace/internal/sys"
	"github.com/vtrace/vtrace/proto/wire"
)

// probeReceipt is a ClockProbe as the control reader found it, with the
// clock it names read at once.
type probeReceipt struct {
	probe *wire.ClockProbe
	clock sys.TraceClock
	at    int64
	err   error // the clock cannot be read from user space
}

// receiveProbe decodes f when it is a ClockProbe the agent can read, and
// reads its clock at once; it returns nil for every other frame (and for
// a probe that does not decode, which the control loop then answers as
// any bad frame).
func receiveProbe(f *wire.Frame) *probeReceipt {
	if f.Type != wire.TypeClockProbe {
		return nil
	}
	m, err := wire.Decode(f)
	if err != nil {
		return nil
	}
	p := m.(*wire.ClockProbe)
	r := &probeReceipt{probe: p}
	if r.clock, r.err = sys.TraceClockByName(p.Clock); r.err == nil {
		r.at, r.err = r.clock.Now()
	}
	return r
}

// clockProbe answers a probe: its receipt reading, the marker it asks
// for (written between the two readings, into the recording's buffer),
// and a reading just before the reply.
func (s *session) clockProbe(r *probeReceipt) {
	a := s.a
	reply := &wire.ClockReply{ID: r.probe.ID, Clock: r.probe.Clock}
	if r.err != nil {
		reply.Error = wire.FreeText(r.err.Error())
		s.reply(reply)
		return
	}
	if r.probe.Mark {
		if err := a.mark(fmt.Sprintf("vtrace-clock probe=%d recv\n", r.probe.ID)); err != nil {
			a.log.Warn("clock probe: no marker", "err", err)
		} else {
			reply.Marked = true
		}
	}
	sent, err := r.clock.Now()
	if err != nil {
		reply.Error = wire.FreeText(err.Error())
		reply.Marked = false
		s.reply(reply)
		return
	}
	reply.Received, reply.Sent = uint64(r.at), uint64(sent)
	if !s.spoken || s.out == nil {
		return
	}
	if err := s.out.sendLate(reply, func() {
		if now, err := r.clock.Now(); err == nil {
			reply.Sent = uint64(now)
		}
	}); err != nil {
		a.log.Warn("control: reply dropped", "err", err)
	}
}

// sendLate queues m, a reply, like send; restamp is called as m is
// written, to update it (a clock probe's Sent reading, taken then rather
// than when m was queued), and m encoded again. An update that does not
// encode leaves the bytes queued.
func (o *ctlOut) sendLate(m *wire.ClockReply, restamp func()) error {
	b, err := wire.AppendMessage(nil, m)
	if err != nil {
		return fmt.Errorf("encode %v: %w", m.Type(), err)
	}
	late := func() []byte {
		restamp()
		if nb, err := wire.AppendMessage(nil, m); err == nil {
			return nb
		}
		return b
	}
	o.mu.Lock()
	queued, err := o.queueLocked(outFrame{b: b, late: late}, m.Type())
	o.mu.Unlock()
	if err == nil && !queued {
		err = fmt.Errorf("send %v: %w (%d bytes queued)", m.Type(), errNotReading, o.max)
	}
	return err
}

// mark writes text into the trace_marker of the recording in progress.
func (a *Agent) mark(text string) error {
	if a.rec == nil {
		return fmt.Errorf("write a marker: not recording")
	}
	path := filepath.Join(a.rec.dir, "trace_marker")
	f, err := os.OpenFile(path, os.O_WRONLY, 0)
	if err != nil {
		return err
	}
	_, err = f.WriteString(text)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	return err
}
