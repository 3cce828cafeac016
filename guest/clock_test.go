package guest_test

import (
	"bytes"
	"fmt"
	"strings"
	"testing"

	"github.com/vtrace/vtrace/guest"
	"github.com/vtrace/vtrace/internal/sys"
	"github.com/vtrace/vtrace/proto/ringbuf"
	"github.com/vtrace/vtrace/proto/wire"
)

// probe sends a ClockProbe and returns its reply with the host's readings
// of the same clock before the write and after the reply came.
func probe(t *testing.T, h *protoHost, clock string, mark bool) (r *wire.ClockReply, before, after int64) {
	t.Helper()
	h.nextID++
	id := h.nextID
	c, err := sys.TraceClockByName(clock)
	if err != nil {
		c, _ = sys.TraceClockByName("mono")
	}
	before, _ = c.Now()
	if err := wire.WriteMessage(h.ctl, &wire.ClockProbe{ID: id, Clock: clock, Mark: mark}); err != nil {
		t.Fatal(err)
	}
	m := h.next()
	after, _ = c.Now()
	r, ok := m.(*wire.ClockReply)
	if !ok || r.ID != id || r.Clock != clock {
		t.Fatalf("clock probe %d: got %#v, want a ClockReply for it", id, m)
	}
	return r, before, after
}

// TestIntegrationProtocolClockProbe: on one kernel, guest and host read
// the same clock, so every probe's readings are in order: host write ≤
// receipt ≤ reply ≤ host read; the marker a probe asks for is stamped
// between the two guest readings; an unreadable clock is refused by name.
func TestIntegrationProtocolClockProbe(t *testing.T) {
	inst := traceInstance(t, "vtrace-guest-clock-base", 0)
	cpus := onlineCPUs(t)
	dir := fifoDir(t, cpus)
	h := newProtoHost(t, dir, inst, cpus)
	startAgent(t, guest.Config{Tracefs: inst, PortsDir: dir, Instance: "vtrace-guest-clock"})
	hello(t, h)

	if r, _, _ := probe(t, h, "local", false); r.Error == "" || !strings.Contains(r.Error, "local") || r.Received != 0 {
		t.Errorf("probe of the local clock: %+v, want an error naming it", r)
	}
	if r, _, _ := probe(t, h, "mono", true); r.Error != "" || r.Marked {
		t.Errorf("probe while idle: %+v, want readings and no marker", r)
	}

	if e := start(t, h, wire.Settings{Events: []string{"sched:sched_process_exit"}, Clock: "mono"}); e != "" {
		t.Fatalf("start: %s", e)
	}
	type window struct{ recv, sent uint64 }
	marked := map[uint64]window{}
	for _, clock := range []string{"mono", "mono", "boot", "mono_raw", "tai", "mono"} {
		r, before, after := probe(t, h, clock, clock == "mono")
		if r.Error != "" {
			t.Fatalf("probe of %s: %s", clock, r.Error)
		}
		if !(before <= int64(r.Received) && r.Received <= r.Sent && int64(r.Sent) <= after) {
			t.Errorf("probe of %s: host %d, guest %d..%d, host %d: out of order", clock, before, r.Received, r.Sent, after)
		}
		if r.Marked != (clock == "mono") {
			t.Errorf("probe of %s: marked %t", clock, r.Marked)
		}
		if r.Marked {
			marked[r.ID] = window{r.Received, r.Sent}
		}
	}
	sr := stop(t, h)
	h.waitEvents(sr)

	found := 0
	for _, cpu := range cpus {
		h.mu.Lock()
		b := bytes.Clone(h.data[cpu].Bytes())
		h.mu.Unlock()
		_, err := ringbuf.Scan(h.layout, bytes.NewReader(b), func(r ringbuf.Record) error {
			for id, w := range marked {
				if !bytes.Contains(r.Payload, []byte(fmt.Sprintf("vtrace-clock probe=%d recv\n", id))) {
					continue
				}
				found++
				if r.TS < w.recv || r.TS > w.sent {
					t.Errorf("marker of probe %d stamped %d, outside the agent's readings %d..%d", id, r.TS, w.recv, w.sent)
				}
			}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	if found != len(marked) {
		t.Errorf("%d markers in the recording, want %d", found, len(marked))
	}
}
