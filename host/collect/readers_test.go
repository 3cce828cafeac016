package collect_test

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/vtrace/vtrace/host/collect"
	"github.com/vtrace/vtrace/internal/testutil"
)

// TestIntegrationCollectNamesAnotherReader: while the agent streams an
// instance, a plain cat of the same instance's per_cpu/cpu0/trace_pipe_raw
// takes pages; 1000 markers are written on CPU 0. The kernel counts every
// one as read, the capture lacks those cat took: collect says so for CPU 0,
// with the number, and for no other CPU.
func TestIntegrationCollectNamesAnotherReader(t *testing.T) {
	testutil.NeedProgram(t, "taskset", "util-linux")
	testutil.BuildVtrace(t)
	inst := testutil.Instance(t, "vtrace-collect-two-readers")
	cpus := testutil.InstanceCPUs(t, inst)
	dir := fifoDir(t, cpus)
	testutil.StartAgent(t, testutil.AgentOptions{Tracefs: inst, Dir: dir})
	testutil.CatPipeRaw(t, filepath.Join(inst, "per_cpu", "cpu0", "trace_pipe_raw"), os.DevNull)

	out := filepath.Join(t.TempDir(), "capture")
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	sum, err := collect.RunStarted(ctx, collect.Config{Dir: dir, Out: out, Start: true, OrderTimeout: 30 * time.Second}, func() {
		w := exec.Command("taskset", "-c", "0", "sh", "-c", `for i in $(seq 1000); do echo "vtrace-taken-$i" >"$1"; done`,
			"sh", filepath.Join(inst, "trace_marker"))
		if b, err := w.CombinedOutput(); err != nil {
			t.Errorf("markers on CPU 0: %v\n%s", err, b)
		}
		writeTracefs(t, filepath.Join(inst, "tracing_on"), "0")
		cancel()
	})
	var text strings.Builder
	sum.Write(&text)
	if err != nil {
		t.Fatalf("Run: %v\n%s", err, text.String())
	}
	t.Logf("summary:\n%s", text.String())
	if len(sum.AgentStats) == 0 || sum.AgentStats[0].CPU != 0 || sum.AgentStats[0].ReadEvents != 1000 {
		t.Fatalf("the agent's final counters %+v: want CPU 0 to have handed out the 1000 markers", sum.AgentStats)
	}
	arrived := sum.CPUs[0].Stats.Events
	if arrived >= 1000 {
		t.Fatalf("all %d markers arrived: cat took none, the test's premise failed", arrived)
	}
	warn := regexp.MustCompile(`(?m)^WARNING: CPU (\d+): the kernel handed out (\d+) events, (\d+) arrived: (\d+) are not in the capture: another reader of the same ring buffer took them`)
	m := warn.FindAllStringSubmatch(text.String(), -1)
	if len(m) != 1 || m[0][1] != "0" || m[0][2] != "1000" || m[0][3] != strconv.FormatInt(arrived, 10) || m[0][4] != fmt.Sprint(1000-arrived) {
		t.Errorf("want one warning, for CPU 0: 1000 handed out, %d arrived, %d taken; got %q", arrived, 1000-arrived, m)
	}
}

// TestIntegrationCollectNamesCPUsNotStreamed: FIFOs for every CPU, an agent
// that streams CPU 0 only (as one started while the others were offline):
// the summary says the others were not streamed instead of showing zeros,
// and names no CPU the agent streamed.
func TestIntegrationCollectNamesCPUsNotStreamed(t *testing.T) {
	bin := testutil.BuildVtrace(t)
	inst := testutil.Instance(t, "vtrace-collect-not-streamed")
	cpus := testutil.InstanceCPUs(t, inst)
	if cpus < 2 {
		t.Fatalf("the instance has %d CPU: the test needs two", cpus)
	}
	dir := fifoDir(t, cpus)
	agent := exec.Command(bin, "guest", "agent", "--tracefs", inst, "--ports-dir", dir, "--cpus", "0")
	var log strings.Builder
	agent.Stdout, agent.Stderr = &log, &log
	if err := agent.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { agent.Process.Kill(); agent.Wait() })

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	sum, err := collect.RunStarted(ctx, collect.Config{Dir: dir, Out: filepath.Join(t.TempDir(), "capture"), Start: true,
		OrderTimeout: 30 * time.Second}, cancel)
	var text strings.Builder
	sum.Write(&text)
	if err != nil {
		t.Fatalf("Run: %v\n%s\nagent: %s", err, text.String(), log.String())
	}
	t.Logf("summary:\n%s", text.String())
	for _, c := range sum.CPUs {
		if c.NotStreamed != (c.CPU != 0) {
			t.Errorf("CPU %d: not streamed %v, want %v", c.CPU, c.NotStreamed, c.CPU != 0)
		}
	}
	for cpu := 1; cpu < cpus; cpu++ {
		if !strings.Contains(text.String(), fmt.Sprintf("WARNING: CPU %d was not streamed", cpu)) ||
			!regexp.MustCompile(fmt.Sprintf(`(?m)^\s*%d\s+cpu%d\.raw\s+not streamed\s*$`, cpu, cpu)).MatchString(text.String()) {
			t.Errorf("the summary does not say CPU %d was not streamed:\n%s", cpu, text.String())
		}
	}
	if strings.Contains(text.String(), "CPU 0 was not streamed") {
		t.Errorf("the summary says CPU 0, which the agent streamed, was not:\n%s", text.String())
	}
}
