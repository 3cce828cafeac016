package orders

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/vtrace/vtrace/host/fifo"
	"github.com/vtrace/vtrace/internal/sys"
	"github.com/vtrace/vtrace/internal/testutil"
	"github.com/vtrace/vtrace/proto/channel"
)

// TestMain removes, after the tests, the vtrace binary they build.
func TestMain(m *testing.M) { testutil.Main(m) }

// TestIntegrationOrdersReachAgent drives this repository's guest agent, in
// loopback mode on a private ftrace instance, with start and stop orders:
// nothing flows before start, pages flow after it, and stop makes the agent
// send everything recorded, down to the page the kernel was still filling.
func TestIntegrationOrdersReachAgent(t *testing.T) {
	inst := testutil.Instance(t, "vtrace-orders-agent")
	cpuDirs, err := filepath.Glob(filepath.Join(inst, "per_cpu", "cpu*"))
	if err != nil || len(cpuDirs) == 0 {
		t.Fatalf("find per_cpu buffers in %s: %v", inst, err)
	}
	cpus := len(cpuDirs)
	dir := testutil.FIFODir(t, channel.Names(cpus)...)
	// The host ends of the data FIFOs, held and read as a collector would.
	var outs []int
	for cpu := range cpus {
		_, path := fifo.Paths(dir, channel.Data(cpu))
		fd, err := sys.Open(path, sys.FIFOReadNonblock, 0)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { sys.Close(fd) })
		outs = append(outs, fd)
	}
	drain := func() int {
		total, buf := 0, make([]byte, 1<<16)
		for _, fd := range outs {
			for {
				n, err := sys.Read(fd, buf)
				if errors.Is(err, sys.EAGAIN) {
					break
				}
				if err != nil {
					t.Fatal(err)
				}
				total += n
			}
		}
		return total
	}
	give := time.Now().Add(time.Minute) // a guard against hangs, not a measure
	waitFor := func(what string, ok func() bool) {
		t.Helper()
		for !ok() {
			if time.Now().After(give) {
				t.Fatalf("gave up waiting: %s", what)
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
	entries := func() int64 {
		var sum int64
		for _, d := range cpuDirs {
			b, err := os.ReadFile(filepath.Join(d, "stats"))
			if err != nil {
				t.Fatal(err)
			}
			v, _, _ := strings.Cut(strings.TrimPrefix(string(b), "entries:"), "\n")
			n, err := strconv.ParseInt(strings.TrimSpace(v), 10, 64)
			if err != nil {
				t.Fatalf("parse entries in %s/stats: %v", d, err)
			}
			sum += n
		}
		return sum
	}
	write := func(name, value string) {
		t.Helper()
		if err := os.WriteFile(filepath.Join(inst, name), []byte(value), 0); err != nil {
			t.Fatal(err)
		}
	}

	testutil.StartAgent(t, testutil.AgentOptions{Tracefs: inst, Dir: dir})
	write("events/sched/enable", "1")
	waitFor("events in the ring buffer", func() bool { return entries() > 0 })
	if n := drain(); n != 0 {
		t.Fatalf("the agent sent %d bytes before any order", n)
	}

	ctx := context.Background()
	for round := range 2 {
		if err := Send(ctx, dir, Start, 30*time.Second); err != nil {
			t.Fatalf("round %d: Send start: %v", round, err)
		}
		waitFor("pages after the start order", func() bool { return drain() > 0 })
		write("tracing_on", "0")
		if err := Send(ctx, dir, Stop, 30*time.Second); err != nil {
			t.Fatalf("round %d: Send stop: %v", round, err)
		}
		// While started, the agent takes whole pages only; emptying the
		// buffers down to the last partial page is what stop does.
		waitFor("the agent to flush the buffers on stop", func() bool { drain(); return entries() == 0 })
		write("tracing_on", "1")
	}
}
