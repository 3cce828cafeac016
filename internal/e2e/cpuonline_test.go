package e2e

import (
	"bytes"
	"os"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/vtrace/vtrace/internal/vmtest"
)

// TestIntegrationCPUComesOnline: a guest of 3 vCPUs whose CPU 1 is offline
// when the agent starts. The agent says it streams CPUs 0 and 2, CPU 1
// being offline. CPU 1 comes online in the middle of a capture and writes
// markers: that capture does not have them, and the agent says the CPU
// came online during it. The next capture streams CPU 1, and everything it
// recorded, those markers included, reaches the host.
func TestIntegrationCPUComesOnline(t *testing.T) {
	logDuration(t)
	g := vmtest.Boot(t, vmtest.Options{CPUs: 3, NoAgent: true})
	work := t.TempDir()
	const online = "/sys/devices/system/cpu/cpu1/online"
	command(t, g, "sh", "echo 0 >"+online)
	before := stats(t, g)
	command(t, g, "start-agent")
	if _, err := g.WaitFor(`msg="CPUs streamed" cpus=0,2 not="1: offline"`, 60*time.Second); err != nil {
		t.Fatal(err)
	}

	first := filepath.Join(work, "first")
	c := startCollect(t, g, first, "--start")
	command(t, g, "sh", "echo 1 >"+online)
	const markers = 200
	command(t, g, "sh", `taskset -c 1 sh -c 'i=0; while [ $i -lt 200 ]; do echo "vtrace-late $i" >/sys/kernel/tracing/trace_marker; i=$((i + 1)); done'`)
	runWorkload(t, g, "spawn", 1, "")
	c.stop(syscall.SIGTERM)
	if _, err := g.WaitFor(`msg="a CPU came online during the recording: it is not in it" cpu=1`, 60*time.Second); err != nil {
		t.Error(err)
	}
	got := scanCaptures(t, g.CPUs, first)
	for _, cpu := range []int{0, 2} {
		if got[cpu].Events == 0 {
			t.Errorf("first capture, cpu %d: no events", cpu)
		}
	}
	if got[1].Bytes != 0 {
		t.Errorf("first capture: %d bytes for cpu 1, which came online after its start", got[1].Bytes)
	}

	second := filepath.Join(work, "second")
	c = startCollect(t, g, second, "--start")
	if _, err := g.WaitFor(`msg="CPU streamed from now on" cpu=1`, 60*time.Second); err != nil {
		t.Error(err)
	}
	runWorkload(t, g, "spawn", 1, "")
	command(t, g, "trace", "off") // nothing recorded after this: the stop sends everything
	c.stop(syscall.SIGTERM)
	after := stats(t, g)

	got = scanCaptures(t, g.CPUs, second)
	read := after[1].ReadEvents - before[1].ReadEvents
	t.Logf("cpu 1: the second capture has %d events in %d pages; the guest handed out %d, holds %d", got[1].Events, got[1].Pages, read, after[1].Entries)
	if got[1].Events == 0 || uint64(got[1].Events) != read || after[1].Entries != 0 {
		t.Errorf("cpu 1: the second capture has %d events; the guest handed out %d since the agent started and holds %d: want all of them, none left",
			got[1].Events, read, after[1].Entries)
	}
	raw, err := os.ReadFile(filepath.Join(second, "cpu1.raw"))
	if err != nil {
		t.Fatal(err)
	}
	if n := bytes.Count(raw, []byte("vtrace-late ")); n != markers {
		t.Errorf("cpu 1: the second capture holds %d of the %d markers written while the first one ran", n, markers)
	}
}
