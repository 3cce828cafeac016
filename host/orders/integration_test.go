package orders

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/vtrace/vtrace/internal/sys"
	"github.com/vtrace/vtrace/internal/testutil"
	"github.com/vtrace/vtrace/proto/channel"
)

// TestIntegrationOrdersReachAgent drives this repository's guest agent, in
// loopback mode on a private ftrace instance, with start and stop orders:
// nothing flows before start, pages flow after it, and stop makes the agent
// send everything recorded, down to the page the kernel was still filling.
func TestIntegrationOrdersReachAgent(t *testing.T) {
	inst := testutil.Instance(t, "vtrace-orders-agent")
	cpus := testutil.InstanceCPUs(t, inst)
	dir := testutil.FIFODir(t, channel.Names(cpus)...)
	// The host ends of the data FIFOs, held and read as a collector would.
	outs := testutil.HoldStreams(t, dir, cpus)
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
	entries := func() int64 {
		var sum int64
		for cpu := range cpus {
			sum += testutil.CPUStat(t, inst, cpu, "entries")
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
	testutil.WaitFor(t, "events in the ring buffer", func() bool { return entries() > 0 })
	if n := drain(); n != 0 {
		t.Fatalf("the agent sent %d bytes before any order", n)
	}

	ctx := context.Background()
	for round := range 2 {
		if err := Send(ctx, dir, Start, 30*time.Second); err != nil {
			t.Fatalf("round %d: Send start: %v", round, err)
		}
		testutil.WaitFor(t, "pages after the start order", func() bool { return drain() > 0 })
		write("tracing_on", "0")
		if err := Send(ctx, dir, Stop, 30*time.Second); err != nil {
			t.Fatalf("round %d: Send stop: %v", round, err)
		}
		// While started, the agent takes whole pages only; emptying the
		// buffers down to the last partial page is what stop does.
		testutil.WaitFor(t, "the agent to flush the buffers on stop", func() bool { drain(); return entries() == 0 })
		write("tracing_on", "1")
	}
}

// TestMain removes, after the tests, the vtrace binary they build.
func TestMain(m *testing.M) { testutil.Main(m) }
