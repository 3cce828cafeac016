package e2e

import (
	"path/filepath"
	"syscall"
	"testing"

	"github.com/vtrace/vtrace/internal/vmtest"
)

// TestIntegrationLossesAreThisCaptures: the top-level buffer remembers
// overruns from before a capture (here: markers written while nobody read).
// The first capture's first pages carry the kernel's missed-events flag for
// them; a second capture that itself lost nothing must say so, and its read
// counts must be its own events, not the buffer's lifetime.
func TestIntegrationLossesAreThisCaptures(t *testing.T) {
	logDuration(t)
	g := vmtest.Boot(t, vmtest.Options{CPUs: 2, BufferKB: 64})
	work := t.TempDir()
	bigMarkers(t, g, 500)                       // nobody reads: the buffer overwrites
	command(t, g, "trace", "buffer_kb", "4096") // room enough from now on
	capture := func(name string) (*collector, []cpuCapture, []vmtest.CPUStats, []vmtest.CPUStats) {
		out := filepath.Join(work, name)
		before := stats(t, g)
		c := startCollect(t, g, out, "--start")
		runWorkload(t, g, "spawn", 1, "")
		command(t, g, "trace", "off")
		c.stop(syscall.SIGTERM)
		after := stats(t, g)
		command(t, g, "trace", "on")
		return c, scanCaptures(t, g.CPUs, out), before, after
	}
	capture("first") // takes the pages flagged for the old losses
	c, got, before, after := capture("second")
	for cpu := range got {
		if got[cpu].MissedPages != 0 || after[cpu].Overrun != before[cpu].Overrun {
			t.Fatalf("cpu%d: the second capture really lost events (%d pages flagged, overrun %d -> %d): the test's premise failed",
				cpu, got[cpu].MissedPages, before[cpu].Overrun, after[cpu].Overrun)
		}
	}
	rows, lost := c.summary(g.CPUs)
	if lost != 0 {
		t.Errorf("a capture that lost nothing: collect warns of %d lost events\n%s", lost, c.stdout.String())
	}
	for cpu := range got {
		if rows[cpu].Read != uint64(got[cpu].Events) || rows[cpu].Overrun != 0 {
			t.Errorf("cpu%d: summary read %d overrun %d, want read %d (the capture's events) and overrun 0",
				cpu, rows[cpu].Read, rows[cpu].Overrun, got[cpu].Events)
		}
	}
}
