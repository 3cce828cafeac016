package dist_test

import (
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/vtrace/vtrace/internal/testutil"
	"github.com/vtrace/vtrace/internal/vmtest"
)

// TestIntegrationInitScript installs the guest binary and the plain init
// script in the test guest (busybox init, no systemd) with `vtrace guest
// install`, as the guest binary is called there, and drives the script:
// start (the host's status is answered), a killed agent restarted by the
// script's supervisor, status, stop (no agent answers any more), and
// uninstall.
func TestIntegrationInitScript(t *testing.T) {
	g := vmtest.Boot(t, vmtest.Options{CPUs: 2, NoAgent: true})
	host := testutil.BuildVtrace(t)
	guestSh := func(line string) string {
		t.Helper()
		out, err := g.Command("sh", line)
		if err != nil {
			t.Fatalf("in the guest: %s: %v\n%s", line, err, out)
		}
		return out
	}
	status := func() (string, error) {
		out, err := exec.Command(host, "host", "status", "--dir", g.Dir, "--handshake-timeout", "2s", "--timeout", "10s").CombinedOutput()
		return string(out), err
	}
	// waitAnswer asks for the agent's status until it answers (the agent
	// takes a moment to start), within a minute.
	waitAnswer := func(what string) string {
		t.Helper()
		var out string
		var err error
		for end := time.Now().Add(time.Minute); time.Now().Before(end); {
			if out, err = status(); err == nil {
				return out
			}
			time.Sleep(time.Second)
		}
		t.Fatalf("%s: no agent answered the host within a minute: %v\n%s\nguest:\n%s", what, err, out,
			guestSh("cat /var/log/vtrace-agent.log; ps"))
		return ""
	}

	out := guestSh("vtrace guest install --init sysv")
	for _, want := range []string{"installed /usr/local/bin/vtrace-guest", "installed /etc/init.d/vtrace-agent",
		"start the agent with: /etc/init.d/vtrace-agent start"} {
		if !strings.Contains(out, want) {
			t.Errorf("vtrace guest install says no %q:\n%s", want, out)
		}
	}
	if out, err := status(); err == nil {
		t.Fatalf("an agent answers before the init script started one:\n%s", out)
	}
	t.Log(guestSh("/etc/init.d/vtrace-agent start"))
	st := waitAnswer("after start")
	if !strings.Contains(st, "idle") {
		t.Errorf("vtrace host status after start:\n%s", st)
	}

	// A killed agent is started again by the script's supervisor.
	first := strings.TrimSpace(guestSh("pidof vtrace-guest"))
	guestSh("kill -KILL " + first)
	waitAnswer("after the agent was killed")
	if again := strings.TrimSpace(guestSh("pidof vtrace-guest")); again == first || again == "" {
		t.Errorf("the agent's pid after it was killed: %q, before %q: not restarted", again, first)
	}
	if log := guestSh("cat /var/log/vtrace-agent.log"); !strings.Contains(log, "restarting in 1s") {
		t.Errorf("the init script's log does not say it restarted the agent:\n%s", log)
	}
	if out := guestSh("/etc/init.d/vtrace-agent status"); !strings.Contains(out, "vtrace-agent: running") {
		t.Errorf("/etc/init.d/vtrace-agent status: %s", out)
	}

	if out := guestSh("/etc/init.d/vtrace-agent stop"); !strings.Contains(out, "vtrace-agent: stopped") {
		t.Errorf("/etc/init.d/vtrace-agent stop: %s", out)
	}
	if out, err := g.Command("sh", "pidof vtrace-guest"); err == nil {
		t.Errorf("an agent runs after stop: %s", out)
	}
	if out, err := g.Command("sh", "/etc/init.d/vtrace-agent status"); err == nil || !strings.Contains(out, "not running") {
		t.Errorf("/etc/init.d/vtrace-agent status after stop: %v: %s", err, out)
	}
	if out, err := status(); err == nil || !strings.Contains(out, "no vtrace agent answered") {
		t.Errorf("vtrace host status after stop: %v\n%s", err, out)
	}
	out = guestSh("vtrace guest uninstall --init sysv; ls /usr/local/bin /etc/init.d")
	if strings.Contains(out, "vtrace-agent\n") || strings.Contains(out, "vtrace-guest\n") {
		t.Errorf("uninstall left files:\n%s", out)
	}
}
