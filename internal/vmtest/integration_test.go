package vmtest

import (
	"strings"
	"testing"
	"time"

	"github.com/vtrace/vtrace/internal/testutil"
)

// TestIntegrationGuestBoots boots the test guest of each kernel with 2
// vCPUs and checks what the other VM tests rely on: the kernel asked for,
// its ports by name, per-CPU stats after a workload, the agent commands,
// the raw port path, and a clean power-off.
func TestIntegrationGuestBoots(t *testing.T) {
	for _, k := range Kernels {
		t.Run(k, func(t *testing.T) { guestBoots(t, k) })
	}
}

func guestBoots(t *testing.T, kernel string) {
	g := Boot(t, Options{Kernel: kernel, CPUs: 2, Heartbeat: 1})
	t.Logf("guest of kernel %s ready after %d boot(s); ports %v", g.Release, g.Boots, g.Ports)
	if uname := strings.TrimSpace(mustCommand(t, g, "sh", "uname -r")); uname != g.Release || !strings.HasPrefix(uname, kernel+".") {
		t.Errorf("the guest's uname -r is %q; VTRACE-BOOT said %q, asked for %s", uname, g.Release, kernel)
	}

	for _, name := range []string{"agent-ctl-path", "trace-path-cpu0", "trace-path-cpu1", TestPort} {
		if !strings.HasPrefix(g.Ports[name], "/dev/vport") {
			t.Errorf("port %s: guest device %q, want /dev/vportXpY", name, g.Ports[name])
		}
	}
	if _, err := g.WaitFor(`^VTRACE-HEARTBEAT \d+`, 30*time.Second); err != nil {
		t.Error(err)
	}

	before, err := g.Stats()
	if err != nil {
		t.Fatal(err)
	}
	if err := g.RunWorkload("spawn", 3); err != nil {
		t.Fatal(err)
	}
	after, err := g.Stats()
	if err != nil {
		t.Fatal(err)
	}
	for i, s := range after {
		if s.CPU != i {
			t.Errorf("stats line %d is of cpu %d", i, s.CPU)
		}
		// The agent was not started from the host: nothing was read.
		if s.Entries+s.Overrun <= before[i].Entries+before[i].Overrun {
			t.Errorf("cpu %d: entries+overrun %d after the workload, %d before: no events recorded",
				i, s.Entries+s.Overrun, before[i].Entries+before[i].Overrun)
		}
	}
	t.Logf("stats after the workload: %+v", after)

	if out, err := g.Command("agent-status"); err != nil || !strings.HasPrefix(out, "running") {
		t.Errorf("agent-status: %q, %v; want running", out, err)
	}
	if _, err := g.Command("kill-agent"); err != nil {
		t.Fatal(err)
	}
	if _, err := g.WaitFor(`^VTRACE-AGENT-EXIT pid=\d+ rc=137`, 30*time.Second); err != nil {
		t.Error(err)
	}
	if _, err := g.Command("no-such-command"); err == nil {
		t.Error("an unknown command succeeded")
	}

	tp, err := g.PortThroughput("trace-path-cpu0", 1024, 65536)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("raw port throughput: %d bytes in %s on the host (%.1f MB/s), %s in the guest",
		tp.Bytes, tp.Host, tp.MBps(), tp.Guest)

	pid := g.Pid()
	if err := g.Shutdown(); err != nil {
		t.Fatal(err)
	}
	if _, err := g.WaitFor(`^VTRACE-POWEROFF`, time.Second); err != nil {
		t.Error(err)
	}
	left, err := Processes(g.Dir)
	if err != nil {
		t.Fatal(err)
	}
	if len(left) > 0 {
		t.Errorf("processes left after shutdown (qemu was %d): %v", pid, left)
	}
}

func mustCommand(t *testing.T, g *Guest, args ...string) string {
	t.Helper()
	out, err := g.Command(args...)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// TestMain removes, after the tests, the vtrace binary they build.
func TestMain(m *testing.M) { testutil.Main(m) }
