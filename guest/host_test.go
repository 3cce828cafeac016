package guest_test

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/vtrace/vtrace/internal/sys"
	"github.com/vtrace/vtrace/internal/testutil"
	"github.com/vtrace/vtrace/proto/channel"
	"github.com/vtrace/vtrace/proto/ringbuf"
)

// traceInstance makes a private ftrace instance recording sched and irq
// events and returns its directory.
func traceInstance(t *testing.T, name string, bufferKB int) string {
	t.Helper()
	dir := testutil.Instance(t, name)
	if bufferKB > 0 {
		write(t, filepath.Join(dir, "buffer_size_kb"), strconv.Itoa(bufferKB))
	}
	write(t, filepath.Join(dir, "events/sched/enable"), "1")
	write(t, filepath.Join(dir, "events/irq/enable"), "1")
	return dir
}

func write(t *testing.T, path, s string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(s), 0); err != nil {
		t.Fatal(err)
	}
}

// startCPUs are the CPUs the test process may run on, as its main thread
// found them at start: a thread an agent's CPU goroutine runs on is bound
// to that CPU meanwhile.
var startCPUs, startCPUsErr = sys.Affinity()

func onlineCPUs(t *testing.T) []int {
	t.Helper()
	if startCPUsErr != nil {
		t.Fatal(startCPUsErr)
	}
	return startCPUs
}

// workload makes sched and irq events on every CPU for about d: short
// processes bound to the CPU, and short sleeps.
func workload(t *testing.T, cpus []int, d time.Duration) {
	t.Helper()
	var wg sync.WaitGroup
	for _, cpu := range cpus {
		wg.Add(1)
		go func() {
			defer wg.Done()
			runtime.LockOSThread() // never unlocked: the thread dies with its affinity
			if err := sys.SetAffinity(cpu); err != nil {
				t.Error(err)
				return
			}
			for end := time.Now().Add(d); time.Now().Before(end); {
				exec.Command("/bin/true").Run()
				time.Sleep(time.Millisecond)
			}
		}()
	}
	wg.Wait()
}

// loopback makes what a test of the agent on this machine needs: a private
// ftrace instance recording sched and irq events (traceInstance), the CPUs
// to stream (every one the test may run on) and their FIFO directory.
func loopback(t *testing.T, name string, bufferKB int) (inst string, cpus []int, dir string) {
	t.Helper()
	inst = traceInstance(t, name, bufferKB)
	cpus = onlineCPUs(t)
	return inst, cpus, fifoDir(t, cpus)
}

// fifoDir makes the host's FIFO directory for cpus, as qemu's pipe
// chardevs want it: NAME.in (host to guest) and NAME.out (guest to host).
func fifoDir(t *testing.T, cpus []int) string {
	t.Helper()
	names := []string{channel.Ctl}
	for _, c := range cpus {
		names = append(names, channel.Data(c))
	}
	return testutil.FIFODir(t, names...)
}

// host is the test's side of the FIFOs: it writes orders and collects
// every CPU's stream.
type host struct {
	t       *testing.T
	ctl     *os.File
	layout  ringbuf.Layout
	cpus    []int
	mu      sync.Mutex
	data    map[int]*bytes.Buffer
	paused  chan struct{} // non-nil while paused; closed to resume
	files   []*os.File
	readers sync.WaitGroup
}

func newHost(t *testing.T, dir, inst string, cpus []int) *host {
	t.Helper()
	l, err := ringbuf.LayoutFromTracefs(inst)
	if err != nil {
		t.Fatal(err)
	}
	h := &host{t: t, layout: l, cpus: cpus, data: map[int]*bytes.Buffer{}}
	// O_RDWR: opening a FIFO so never blocks and never reads EOF.
	if h.ctl, err = os.OpenFile(filepath.Join(dir, "agent-ctl-path.in"), os.O_RDWR, 0); err != nil {
		t.Fatal(err)
	}
	for _, cpu := range cpus {
		f, err := os.OpenFile(filepath.Join(dir, fmt.Sprintf("trace-path-cpu%d.out", cpu)), os.O_RDWR, 0)
		if err != nil {
			t.Fatal(err)
		}
		h.files = append(h.files, f)
		h.data[cpu] = &bytes.Buffer{}
		h.readers.Add(1)
		go h.read(cpu, f)
	}
	t.Cleanup(h.close)
	return h
}

func (h *host) read(cpu int, f *os.File) {
	defer h.readers.Done()
	buf := make([]byte, 256<<10)
	for {
		h.mu.Lock()
		p := h.paused
		h.mu.Unlock()
		if p != nil {
			<-p
		}
		n, err := f.Read(buf)
		h.mu.Lock()
		h.data[cpu].Write(buf[:n])
		h.mu.Unlock()
		if err != nil {
			return
		}
	}
}

func (h *host) close() {
	h.ctl.Close()
	h.resume()
	for _, f := range h.files {
		f.Close()
	}
	h.readers.Wait()
}

func (h *host) pause() {
	h.mu.Lock()
	h.paused = make(chan struct{})
	h.mu.Unlock()
}

func (h *host) resume() {
	h.mu.Lock()
	if h.paused != nil {
		close(h.paused)
		h.paused = nil
	}
	h.mu.Unlock()
}

// send writes control bytes exactly as given, in one write.
func (h *host) send(s string) {
	h.t.Helper()
	if _, err := h.ctl.WriteString(s); err != nil {
		h.t.Fatal(err)
	}
}

// received parses what arrived for cpu so far.
func (h *host) received(cpu int) (ringbuf.Stats, error) {
	h.mu.Lock()
	b := bytes.Clone(h.data[cpu].Bytes())
	h.mu.Unlock()
	return scan(h.layout, b)
}

// scan parses a CPU's stream and checks that time never goes backwards.
func scan(l ringbuf.Layout, b []byte) (ringbuf.Stats, error) {
	var last uint64
	var back error
	st, err := ringbuf.Scan(l, bytes.NewReader(b), func(r ringbuf.Record) error {
		if r.TS < last && back == nil {
			back = fmt.Errorf("timestamp %d after %d", r.TS, last)
		}
		last = r.TS
		return nil
	})
	if err == nil {
		err = back
	}
	return st, err
}

// caughtUp waits until, on every CPU, the ring buffer is empty and the
// events received equal the kernel's "read events" (all consumed, none
// twice); then it checks, per CPU, that whatever the ring buffer overwrote
// shows as missed-events flags. It fails after a generous deadline with
// what differs.
func (h *host) caughtUp(inst string) map[int]ringbuf.Stats {
	h.t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		out := map[int]ringbuf.Stats{}
		var diffs []string
		for _, cpu := range h.cpus {
			st, err := h.received(cpu)
			ks := testutil.CPUStats(h.t, inst, cpu)
			if err != nil || ks["entries"] != 0 || st.Events != ks["read events"] {
				diffs = append(diffs, fmt.Sprintf("cpu %d: received %d events in %d pages (%v); kernel: entries %d, read events %d, overrun %d",
					cpu, st.Events, st.Pages, err, ks["entries"], ks["read events"], ks["overrun"]))
			}
			out[cpu] = st
		}
		if len(diffs) == 0 {
			for _, cpu := range h.cpus {
				st, ks := out[cpu], testutil.CPUStats(h.t, inst, cpu)
				if ks["overrun"] > 0 && st.MissedPages == 0 {
					h.t.Errorf("cpu %d: kernel overran %d events but no page says so", cpu, ks["overrun"])
				}
				if ks["overrun"] == 0 && st.MissedPages > 0 {
					h.t.Errorf("cpu %d: %d pages flag missed events but the kernel overran none", cpu, st.MissedPages)
				}
				if st.MissedEvents > uint64(ks["overrun"]) {
					h.t.Errorf("cpu %d: pages count %d missed events, kernel overrun %d", cpu, st.MissedEvents, ks["overrun"])
				}
			}
			return out
		}
		if time.Now().After(deadline) {
			h.t.Fatalf("the host did not receive what the kernel recorded:\n%s", strings.Join(diffs, "\n"))
		}
		time.Sleep(50 * time.Millisecond)
	}
}
