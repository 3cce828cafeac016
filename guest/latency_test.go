package guest_test

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/vtrace/vtrace/guest"
	"github.com/vtrace/vtrace/internal/sys"
	"github.com/vtrace/vtrace/internal/testutil"
	"github.com/vtrace/vtrace/proto/ringbuf"
)

// TestIntegrationLatency: markers written far apart, far below the
// buffer_percent watermark, each reach the host while it never sends a
// stop: after a pause longer than the latency (the buffer went quiet and
// empty), in a burst that fills pages behind a page already sent partly,
// and after the guest turns its own tracing off. The stop afterwards finds
// every event once: the host's count equals the kernel's read events, and
// each marker arrived once.
func TestIntegrationLatency(t *testing.T) {
	inst := testutil.Instance(t, "vtrace-guest-latency") // no events: markers only
	cpus := onlineCPUs(t)
	dir := fifoDir(t, cpus)
	h := newHost(t, dir, inst, cpus)
	const latency = 300 * time.Millisecond
	startAgent(t, guest.Config{Tracefs: inst, PortsDir: dir, Latency: latency})
	h.send("1\n")

	m := newMarkers(t, inst)
	n := 0
	mark := func(text string) {
		t.Helper()
		n++
		m.write(fmt.Sprintf("vtrace-latency %d %s", n, text))
	}
	for i := 0; i < 6; i++ {
		gap := 50 * time.Millisecond // several markers on one page, sent partly full
		if i%2 == 1 {
			gap = 2 * latency // the buffer empties and goes quiet in between
		}
		mark("slow")
		waited := h.waitMarker(n)
		t.Logf("marker %d arrived after %v (latency %v)", n, waited.Round(time.Millisecond), latency)
		time.Sleep(gap)
	}
	// A burst: the page sent partly full above fills up behind it and
	// goes out by splice, from where the read left it.
	for i := 0; i < 200; i++ {
		mark(strings.Repeat("b", 100))
	}
	h.waitMarker(n)
	// The guest turns tracing off: what it recorded still goes.
	mark("last")
	tracing(t, inst, false)
	waited := h.waitMarker(n)
	t.Logf("last marker, tracing off, arrived after %v", waited.Round(time.Millisecond))

	h.send("0\n")
	h.caughtUp(inst)
	for cpu, count := range h.markerCounts() {
		for i := 1; i <= n; i++ {
			if count[i] > 1 {
				t.Errorf("cpu %d: marker %d arrived %d times", cpu, i, count[i])
			}
		}
	}
	total := map[int]int{}
	for _, count := range h.markerCounts() {
		for i, c := range count {
			total[i] += c
		}
	}
	for i := 1; i <= n; i++ {
		if total[i] != 1 {
			t.Errorf("marker %d arrived %d times in all, want once", i, total[i])
		}
	}
}

// markerWriter writes trace_marker lines of an instance, one write each.
type markerWriter struct {
	t *testing.T
	f *os.File
}

func newMarkers(t *testing.T, inst string) *markerWriter {
	t.Helper()
	f, err := os.OpenFile(filepath.Join(inst, "trace_marker"), os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.Close() })
	return &markerWriter{t: t, f: f}
}

func (m *markerWriter) write(s string) {
	m.t.Helper()
	if _, err := m.f.WriteString(s); err != nil {
		m.t.Fatalf("write trace_marker: %v", err)
	}
}

// waitMarker waits until marker n (see markerCounts) has reached the host
// and returns how long that took; it fails the test after 30 s, which no
// latency here comes near: a marker that never arrives before a stop is
// what it catches.
func (h *host) waitMarker(n int) time.Duration {
	h.t.Helper()
	begin := time.Now()
	for {
		for _, count := range h.markerCounts() {
			if count[n] > 0 {
				return time.Since(begin)
			}
		}
		if time.Since(begin) > 30*time.Second {
			h.t.Fatalf("marker %d did not reach the host within 30 s, and no stop was sent", n)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// markerCounts counts, per CPU, the markers "vtrace-latency N ..." that
// arrived, by N.
func (h *host) markerCounts() map[int]map[int]int {
	out := map[int]map[int]int{}
	for _, cpu := range h.cpus {
		h.mu.Lock()
		b := bytes.Clone(h.data[cpu].Bytes())
		h.mu.Unlock()
		count := map[int]int{}
		ringbuf.Scan(h.layout, bytes.NewReader(b), func(r ringbuf.Record) error {
			if i := bytes.Index(r.Payload, []byte("vtrace-latency ")); i >= 0 {
				f := strings.Fields(string(r.Payload[i:]))
				if len(f) > 1 {
					if k, err := strconv.Atoi(f[1]); err == nil {
						count[k]++
					}
				}
			}
			return nil
		})
		out[cpu] = count
	}
	return out
}

// TestIntegrationIdleNoWakeups: an agent whose buffers stay empty, with a
// latency set, makes no wake-ups: its CPU goroutines' threads switch out
// voluntarily not once in a second (they block in poll(2) with no timeout;
// buffer_percent 0 would wake them for the first event).
func TestIntegrationIdleNoWakeups(t *testing.T) {
	inst := testutil.Instance(t, "vtrace-guest-idle")
	cpus := onlineCPUs(t)
	dir := fifoDir(t, cpus)
	h := newHost(t, dir, inst, cpus)
	startAgent(t, guest.Config{Tracefs: inst, PortsDir: dir, Latency: 100 * time.Millisecond})
	h.send("1\n")
	m := newMarkers(t, inst)
	m.write("vtrace-latency 1 wake")
	h.waitMarker(1)

	// Once every buffer is empty, buffer_percent goes to 0 (the agent's
	// own setting stays while any CPU holds events).
	deadline := time.Now().Add(30 * time.Second)
	for strings.TrimSpace(read(t, filepath.Join(inst, "buffer_percent"))) != "0" {
		if time.Now().After(deadline) {
			t.Fatalf("buffer_percent is %s 30 s after the last event, want 0", read(t, filepath.Join(inst, "buffer_percent")))
		}
		time.Sleep(10 * time.Millisecond)
	}
	// A CPU that found its buffer empty while buffer_percent was not yet
	// 0 waits once more, up to its latency.
	time.Sleep(500 * time.Millisecond)
	// The CPU goroutines run on threads of their own (locked), sleeping
	// in poll(2); the test's other threads sleep in futex or epoll_wait.
	var idle map[int]int64
	for {
		idle = pollingThreads(t)
		if len(idle) >= len(cpus) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("found %d threads waiting in poll(2), want the %d CPU goroutines'", len(idle), len(cpus))
		}
		time.Sleep(10 * time.Millisecond)
	}
	time.Sleep(time.Second)
	for tid, before := range idle {
		after := switches(t, tid)
		if after != before {
			t.Errorf("thread %d: %d voluntary context switches in 1 s of an empty buffer, want 0", tid, after-before)
		}
	}
	runtime.KeepAlive(h)
}

// pollingThreads returns the process's threads now sleeping in poll(2)
// (wchan poll_schedule_timeout) with their voluntary context switches.
func pollingThreads(t *testing.T) map[int]int64 {
	t.Helper()
	tids, err := sys.Threads()
	if err != nil {
		t.Fatal(err)
	}
	out := map[int]int64{}
	for _, tid := range tids {
		wchan, _ := os.ReadFile(fmt.Sprintf("/proc/self/task/%d/wchan", tid))
		if strings.HasPrefix(string(wchan), "poll_schedule_timeout") {
			out[tid] = switches(t, tid)
		}
	}
	return out
}

func switches(t *testing.T, tid int) int64 {
	t.Helper()
	b, err := os.ReadFile(fmt.Sprintf("/proc/self/task/%d/status", tid))
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "voluntary_ctxt_switches:"); ok {
			n, _ := strconv.ParseInt(strings.TrimSpace(v), 10, 64)
			return n
		}
	}
	t.Fatalf("no voluntary_ctxt_switches in thread %d's status", tid)
	return 0
}

func read(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}
