package collect_test

import (
	"bytes"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/vtrace/vtrace/host/timesync"
	"github.com/vtrace/vtrace/host/timesync/timesynctest"
	"github.com/vtrace/vtrace/internal/testutil"
)

// TestIntegrationCollectTimelineLoopback runs `vtrace host collect
// --host-events` against this repository's agent on this machine's own
// kernel, so guest and host read one clock: the fit finds no offset and no
// drift beyond what the probes' delays allow, and trace-cmd shows every
// probe's guest marker between its two host markers.
func TestIntegrationCollectTimelineLoopback(t *testing.T) {
	bin := testutil.BuildVtrace(t)
	tc := testutil.NeedProgram(t, "trace-cmd", "trace-cmd")
	inst := testutil.Instance(t, "vtrace-collect-timeline")
	cpus := testutil.InstanceCPUs(t, inst)
	dir := fifoDir(t, cpus)
	testutil.StartAgent(t, testutil.AgentOptions{Tracefs: inst, Dir: dir, Instance: "vtrace-collect-timeline-agent"})
	out := filepath.Join(t.TempDir(), "capture")
	cmd := exec.Command(bin, "host", "collect", "--dir", dir, "-o", out, "--start", "--events", "sched:sched_process_exec",
		"--host-events", "sched:sched_process_exec", "--sync-interval", "200ms", "--sync-probes", "8", "--sync-markers",
		"--duration", "2s", "--timeout", "30s", "--quiet")
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("collect: %v\n%s\n%s", err, stdout.String(), stderr.String())
	}
	t.Logf("summary:\n%s%s", stdout.String(), stderr.String())
	if !strings.Contains(stdout.String(), "clock mono: ") || !strings.Contains(stdout.String(), "-i "+filepath.Join(out, "host.dat")) {
		t.Errorf("the summary does not report the clock fit and host.dat")
	}
	r, err := timesync.Load(out)
	if err != nil {
		t.Fatal(err)
	}
	f := r.Fit
	if r.Clock != "mono" || f == nil || len(r.Probes) < 8*5 {
		t.Fatalf("clock record: clock %q, %d probes, fit %+v", r.Clock, len(r.Probes), f)
	}
	span := float64(f.Last - f.First)
	if off := math.Abs(f.At(f.First)); off > float64(f.BestDelay) || math.Abs(f.Drift)*span > 2*float64(f.BestDelay) || f.Margin < 0 {
		t.Errorf("one clock, yet offset %.0f ns, drift %g over %.1f s, margin %.0f ns (best delay %d ns)", off, f.Drift, span/1e9, f.Margin, f.BestDelay)
	}
	st, err := exec.Command(bin, "host", "stats", out).CombinedOutput()
	if err != nil || !strings.Contains(string(st), "clock sync: trace clock mono") || !strings.Contains(string(st), "uncertainty: ±") {
		t.Errorf("vtrace host stats: %v, want the clock sync:\n%s", err, st)
	}
	probes, lines := timesynctest.Merged(t, tc, filepath.Join(out, "host.dat"), filepath.Join(out, "trace.dat"))
	if len(probes) != len(r.Probes) || lines != 3*len(r.Probes) {
		t.Errorf("trace-cmd shows %d probes with three markers (%d marker lines); %d probes were answered", len(probes), lines, len(r.Probes))
	}
	slack, bad := timesynctest.Causality(probes)
	for _, b := range bad {
		t.Error(b)
	}
	t.Logf("%d probes; smallest slack %d ns; best delay %d ns", len(probes), slack, f.BestDelay)

	// vtrace host convert keeps the timeline, for the guest's capture and
	// for the host's.
	host2, guest2 := filepath.Join(out, "host2.dat"), filepath.Join(out, "trace2.dat")
	for _, args := range [][]string{{"host", "convert", out, "-o", guest2}, {"host", "convert", filepath.Join(out, "host"), "-o", host2}} {
		if b, err := exec.Command(bin, args...).CombinedOutput(); err != nil {
			t.Fatalf("vtrace %v: %v\n%s", args, err, b)
		}
	}
	again, _ := timesynctest.Merged(t, tc, host2, guest2)
	if diff := cmp.Diff(probes, again); diff != "" {
		t.Errorf("converted again, the merged timeline differs (-collect +convert):\n%s", diff)
	}
}

// TestIntegrationCollectTimelineLineProtocol: an agent of the line protocol
// gives a guest-only capture, and --host-events says why there is no
// merged timeline.
func TestIntegrationCollectTimelineLineProtocol(t *testing.T) {
	bin := testutil.BuildVtrace(t)
	inst := testutil.Instance(t, "vtrace-collect-timeline-line")
	writeTracefs(t, filepath.Join(inst, "events/sched/sched_switch/enable"), "1")
	cpus := testutil.InstanceCPUs(t, inst)
	dir := fifoDir(t, cpus)
	orders := lineAgent(t, inst, dir, cpus)
	out := filepath.Join(t.TempDir(), "capture")
	cmd := exec.Command(bin, "host", "collect", "--dir", dir, "-o", out, "--start", "--host-events", "sched",
		"--duration", "1s", "--handshake-timeout", "300ms", "--quiet")
	b, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("collect: %v\n%s", err, b)
	}
	if !strings.Contains(string(b), "--host-events: no merged timeline: no vtrace agent answered the handshake") {
		t.Errorf("collect does not say why there is no merged timeline:\n%s", b)
	}
	for _, name := range []string{"host.dat", "host", "clock.json"} {
		if _, err := os.Stat(filepath.Join(out, name)); !os.IsNotExist(err) {
			t.Errorf("a guest-only capture has %s", name)
		}
	}
	if ents, _ := filepath.Glob(filepath.Join(out, "cpu*.raw")); len(ents) != cpus {
		t.Errorf("capture files %v, want %d", ents, cpus)
	}
	if got := orders(); strings.Join(got, "") != "10" {
		t.Errorf("orders obeyed %v, want 1 then 0", got)
	}
}
