package collect_test

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/vtrace/vtrace/host/collect"
	"github.com/vtrace/vtrace/internal/testutil"
	"github.com/vtrace/vtrace/proto/wire"
)

// writeMarkers writes n markers "PREFIX-I" into an instance's trace_marker.
func writeMarkers(t *testing.T, dir, prefix string, n int) {
	t.Helper()
	f, err := os.OpenFile(filepath.Join(dir, "trace_marker"), os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	for i := range n {
		if _, err := fmt.Fprintf(f, "%s-%d", prefix, i); err != nil {
			t.Fatal(err)
		}
	}
}

// TestIntegrationCaptureHoldsOnlyItsRecording: a collector killed with
// SIGKILL while recording, then `vtrace host stop`: the agent pushes the
// recording's last pages (100 "old" markers) into the FIFOs, which qemu
// holds open, and nobody reads them. The next capture starts, 5 "new"
// markers are written: its trace.dat holds the 5 and none of the old, and
// its summary says what was discarded.
func TestIntegrationCaptureHoldsOnlyItsRecording(t *testing.T) {
	tc := testutil.NeedProgram(t, "trace-cmd", "trace-cmd")
	bin := testutil.BuildVtrace(t)
	inst := testutil.Instance(t, "vtrace-stale-base")
	cpus := testutil.InstanceCPUs(t, inst)
	dir := fifoDir(t, cpus)
	testutil.HoldStreams(t, dir, cpus)
	a := testutil.StartAgent(t, testutil.AgentOptions{Tracefs: inst, Dir: dir, Instance: "vtrace-stale"})
	first := exec.Command(bin, "host", "collect", "--dir", dir, "-o", filepath.Join(t.TempDir(), "first"), "--start",
		"--instance", "vtrace-stale", "--timeout", "30s")
	if err := first.Start(); err != nil {
		t.Fatal(err)
	}
	defer first.Process.Kill()
	// The instance's directory appears before its files: wait for the
	// recording itself (tracing_on set by the agent).
	testutil.WaitFor(t, "the first recording to start", func() bool {
		b, err := os.ReadFile(filepath.Join(a.Own, "tracing_on"))
		return err == nil && strings.TrimSpace(string(b)) == "1"
	})
	writeMarkers(t, a.Own, "vtrace-old", 100)
	first.Process.Kill()
	first.Wait()
	if s, _, err := testutil.RunVtrace(t, "host", "stop", "--dir", dir, "--timeout", "30s"); err != nil {
		t.Fatalf("host stop after the collector died: %v\n%s", err, s)
	}

	out := filepath.Join(t.TempDir(), "second")
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	sum, err := collect.RunStarted(ctx, collect.Config{Dir: dir, Out: out, Start: true, OrderTimeout: 30 * time.Second,
		Settings: wire.Settings{Instance: "vtrace-stale"}}, func() {
		writeMarkers(t, a.Own, "vtrace-new", 5)
		cancel()
	})
	var log strings.Builder
	sum.Write(&log)
	if err != nil {
		t.Fatalf("second capture: %v\n%s", err, log.String())
	}
	t.Logf("second capture:\n%s", log.String())
	rep, err := exec.Command(tc, "report", "-i", filepath.Join(out, "trace.dat")).CombinedOutput()
	if err != nil {
		t.Fatalf("trace-cmd report: %v\n%s", err, rep)
	}
	if old, new := strings.Count(string(rep), "vtrace-old-"), strings.Count(string(rep), "vtrace-new-"); old != 0 || new != 5 {
		t.Errorf("the second capture holds %d old and %d new markers, want 0 and 5:\n%.3000s", old, new, rep)
	}
	var stale int64
	for _, c := range sum.CPUs {
		stale += c.Stale
	}
	if stale == 0 || !strings.Contains(log.String(), "an earlier recording left in") {
		t.Errorf("the second capture does not say it discarded the earlier recording's pages:\n%s", log.String())
	}
}
