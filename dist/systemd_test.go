package dist_test

import (
	"bufio"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/vtrace/vtrace/internal/testutil"
)

// TestIntegrationSystemdUnit boots a Debian guest that runs systemd and
// udev (scripts/build-systemd-guest.sh, cached in build/systemd-guest), with
// vtrace's guest binary, unit and udev rule added by `vtrace-guest install
// --root`, and checks the unit under a real systemd: udev starts it when
// the control port appears (it is not enabled), its hardening lets the
// agent record (a capture with events, an ftrace instance for --events,
// kallsyms with addresses), a killed agent is restarted, `vtrace-guest
// install --now` starts it in a running guest, and a stop is clean (exit
// status 0).
func TestIntegrationSystemdUnit(t *testing.T) {
	testutil.NeedRoot(t)
	testutil.NeedProgram(t, "qemu-system-x86_64", "qemu-system-x86")
	testutil.NeedProgram(t, "cpio", "cpio")
	repo := testutil.Repo(t)
	host := testutil.BuildVtrace(t)
	imageDir := os.Getenv("VTRACE_SYSTEMD_GUEST_DIR")
	if imageDir == "" {
		imageDir = filepath.Join(repo, "build", "systemd-guest")
	}
	begin := time.Now()
	if out, err := exec.Command("bash", filepath.Join(repo, "scripts", "build-systemd-guest.sh"), "-o", imageDir).CombinedOutput(); err != nil {
		t.Fatalf("scripts/build-systemd-guest.sh: %v\n%s", err, out)
	}
	t.Logf("systemd guest image ready in %.1fs", time.Since(begin).Seconds())

	// The image plus a second cpio archive: what vtrace-guest install puts
	// in a guest's file tree.
	work := t.TempDir()
	guestBin := filepath.Join(work, "vtrace-guest")
	build := exec.Command("go", "build", "-trimpath", "-ldflags", "-s -w", "-o", guestBin, "./cmd/vtrace-guest")
	build.Dir, build.Env = repo, append(os.Environ(), "CGO_ENABLED=0")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("build vtrace-guest: %v\n%s", err, out)
	}
	overlay := filepath.Join(work, "overlay")
	if out, err := exec.Command(guestBin, "install", "--root", overlay, "--init", "systemd").CombinedOutput(); err != nil {
		t.Fatalf("vtrace-guest install --root: %v\n%s", err, out)
	}
	guestDir := filepath.Join(work, "guest")
	if err := os.Mkdir(guestDir, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Link(filepath.Join(imageDir, "vmlinuz"), filepath.Join(guestDir, "vmlinuz")); err != nil {
		copyTo(t, filepath.Join(imageDir, "vmlinuz"), filepath.Join(guestDir, "vmlinuz"))
	}
	initrd := filepath.Join(guestDir, "initramfs.gz")
	copyTo(t, filepath.Join(imageDir, "rootfs.cpio.gz"), initrd)
	pack := exec.Command("bash", "-c", `cd "$1" && find . -mindepth 1 | LC_ALL=C sort | cpio -o -H newc --quiet -R 0:0 | gzip -1 >>"$2"`, "pack", overlay, initrd)
	if out, err := pack.CombinedOutput(); err != nil {
		t.Fatalf("pack the overlay: %v\n%s", err, out)
	}

	g := bootSystemdGuest(t, repo, host, guestDir)
	status := func() (string, error) {
		out, err := exec.Command(host, "host", "status", "--dir", g.dir, "--handshake-timeout", "3s", "--timeout", "10s").CombinedOutput()
		return string(out), err
	}
	waitAnswer := func(what string, within time.Duration) string {
		t.Helper()
		var out string
		var err error
		for end := time.Now().Add(within); time.Now().Before(end); {
			if out, err = status(); err == nil {
				return out
			}
			time.Sleep(time.Second)
		}
		t.Fatalf("%s: no agent answered within %v: %v\n%s\nconsole:\n%s", what, within, err, out, g.consoleTail())
		return ""
	}

	begin = time.Now()
	st := waitAnswer("boot", 4*time.Minute)
	t.Logf("the agent answered %.1fs after qemu started:\n%s", time.Since(g.started).Seconds(), st)
	if _, err := g.command("true", 3*time.Minute); err != nil {
		t.Fatalf("test port: %v\nconsole:\n%s", err, g.consoleTail())
	}
	must := func(line string) string {
		t.Helper()
		out, err := g.command(line, time.Minute)
		if err != nil {
			t.Fatalf("in the guest: %s: %v\n%s", line, err, out)
		}
		return out
	}
	if got := strings.TrimSpace(must("systemctl is-active vtrace-agent.service")); got != "active" {
		t.Errorf("vtrace-agent.service is %q", got)
	}
	// Started by the port's device (the udev rule), not by being enabled.
	if got, _ := g.command("systemctl is-enabled vtrace-agent.service", time.Minute); !strings.Contains(got, "disabled") {
		t.Errorf("systemctl is-enabled vtrace-agent.service: %q, want disabled (udev starts it)", got)
	}
	// systemctl quotes the name and doubles its backslashes.
	if got := must("systemctl show -p BindsTo --value vtrace-agent.service"); !strings.Contains(strings.ReplaceAll(got, `\\`, `\`), `dev-virtio\x2dports-agent\x2dctl\x2dpath.device`) {
		t.Errorf("vtrace-agent.service binds to %q", got)
	}
	t.Logf("systemd-analyze security vtrace-agent.service:\n%s", must("systemd-analyze security --no-pager vtrace-agent.service | tail -3"))

	// The hardened agent records: settings in an instance of its own,
	// events, metadata with kallsyms' addresses.
	capture := filepath.Join(work, "capture")
	out, err := exec.Command(host, "host", "collect", "--start", "--dir", g.dir, "-o", capture, "--duration", "3s", "--quiet",
		"--events", "sched,irq").CombinedOutput()
	if err != nil {
		t.Fatalf("vtrace host collect --start --events sched,irq: %v\n%s\njournal:\n%s", err, out, must("journalctl -b -u vtrace-agent --no-pager | tail -40"))
	}
	t.Logf("vtrace host collect:\n%s", out)
	if strings.Contains(string(out), "WARNING") {
		t.Errorf("collect warns:\n%s", out)
	}
	stats, err := exec.Command(host, "host", "stats", capture).CombinedOutput()
	t.Logf("vtrace host stats:\n%s", stats)
	if err != nil || !regexp.MustCompile(`(?m)^\s*sched:sched_switch\s+\S+\s+[1-9]`).Match(stats) {
		t.Errorf("no sched_switch events in the capture: %v", err)
	}
	if b, err := os.ReadFile(filepath.Join(capture, "meta", "kallsyms")); err != nil || !regexp.MustCompile(`(?m)^[0-9a-f]*[1-9a-f][0-9a-f]* [tT] `).Match(b) {
		t.Errorf("capture/meta/kallsyms has no addresses (%v): the unit's capabilities hide them", err)
	}
	if _, err := os.Stat(filepath.Join(capture, "trace.dat")); err != nil {
		t.Errorf("no trace.dat: %v", err)
	}
	if j := must("journalctl -b -u vtrace-agent --no-pager -p warning"); strings.Contains(j, "vtrace-guest[") {
		t.Errorf("the agent logged warnings under the unit:\n%s", j)
	}

	// A killed agent is started again.
	must("systemctl kill -s KILL vtrace-agent.service")
	waitAnswer("after the agent was killed", time.Minute)
	if n, _ := strconv.Atoi(strings.TrimSpace(must("systemctl show -p NRestarts --value vtrace-agent.service"))); n < 1 {
		t.Errorf("NRestarts of vtrace-agent.service is %d after a kill, want 1 or more", n)
	}

	// vtrace-guest install --now in the running guest, the unit and rule
	// gone and the agent stopped: the replayed port events start it.
	must("systemctl stop vtrace-agent.service && rm /etc/systemd/system/vtrace-agent.service /etc/udev/rules.d/60-vtrace-agent.rules" +
		" && systemctl daemon-reload && udevadm control --reload")
	if out, err := status(); err == nil {
		t.Fatalf("an agent answers after systemctl stop:\n%s", out)
	}
	reply, err := g.command("/usr/local/bin/vtrace-guest install --now", time.Minute)
	t.Logf("vtrace-guest install --now: %v\n%s", err, reply)
	waitAnswer("after vtrace-guest install --now", time.Minute)

	// A stop is clean: SIGTERM, the agent exits 0.
	must("systemctl stop vtrace-agent.service")
	if got := strings.TrimSpace(must("systemctl show -p ExecMainStatus --value vtrace-agent.service")); got != "0" {
		t.Errorf("the agent's exit status after systemctl stop: %s", got)
	}
	if out, err := status(); err == nil {
		t.Errorf("an agent answers after systemctl stop:\n%s", out)
	}
	t.Logf("systemd guest: %.1fs from boot to the end", time.Since(begin).Seconds())
}

func copyTo(t *testing.T, from, to string) {
	t.Helper()
	in, err := os.Open(from)
	if err != nil {
		t.Fatal(err)
	}
	defer in.Close()
	out, err := os.Create(to)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := io.Copy(out, in); err != nil {
		t.Fatal(err)
	}
	if err := out.Close(); err != nil {
		t.Fatal(err)
	}
}

// systemdGuest is a qemu booted by scripts/run-guest.sh with the trace
// channels and the vtrace-test port in dir.
type systemdGuest struct {
	t       *testing.T
	dir     string
	console string
	started time.Time

	mu      sync.Mutex
	in      *os.File
	replies *strings.Builder
	cond    *sync.Cond
	n       int
}

func bootSystemdGuest(t *testing.T, repo, host, guestDir string) *systemdGuest {
	t.Helper()
	g := &systemdGuest{t: t, dir: t.TempDir(), console: filepath.Join(t.TempDir(), "console.log"), replies: &strings.Builder{}}
	g.cond = sync.NewCond(&g.mu)
	for _, end := range []string{".in", ".out"} {
		if err := syscall.Mkfifo(filepath.Join(g.dir, "vtrace-test"+end), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	var err error
	if g.in, err = os.OpenFile(filepath.Join(g.dir, "vtrace-test.in"), os.O_RDWR, 0); err != nil {
		t.Fatal(err)
	}
	out, err := os.OpenFile(filepath.Join(g.dir, "vtrace-test.out"), os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { g.in.Close(); out.Close() })
	go func() {
		r := bufio.NewReader(out)
		for {
			line, err := r.ReadString('\n')
			g.mu.Lock()
			g.replies.WriteString(line)
			g.cond.Broadcast()
			g.mu.Unlock()
			if err != nil {
				return
			}
		}
	}()
	cmd := exec.Command("bash", filepath.Join(repo, "scripts", "run-guest.sh"), "-n", "-c", "2", "-m", "1024",
		"-d", g.dir, "-g", guestDir, "-C", "file:"+g.console)
	cmd.Env = append(os.Environ(), "VTRACE_BIN="+host)
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	var qemuOut strings.Builder
	cmd.Stdout, cmd.Stderr = &qemuOut, &qemuOut
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	g.started = time.Now()
	done := make(chan struct{})
	go func() { cmd.Wait(); close(done) }()
	t.Cleanup(func() {
		cmd.Process.Kill()
		<-done
		if t.Failed() {
			t.Logf("qemu: %s", qemuOut.String())
		}
	})
	return g
}

// command runs line in the guest through the vtrace-test port and returns
// its output; an error when it exits non-zero or does not answer within
// timeout.
func (g *systemdGuest) command(line string, timeout time.Duration) (string, error) {
	g.mu.Lock()
	defer g.mu.Unlock()
	start := g.replies.Len()
	if _, err := g.in.WriteString(line + "\n"); err != nil {
		return "", err
	}
	g.n++
	end := regexp.MustCompile(fmt.Sprintf(`(?m)^VTRACE-END n=%d rc=(\d+)\n`, g.n))
	timer := time.AfterFunc(timeout, func() { g.mu.Lock(); g.cond.Broadcast(); g.mu.Unlock() })
	defer timer.Stop()
	deadline := time.Now().Add(timeout)
	for {
		s := g.replies.String()[start:]
		if m := end.FindStringSubmatchIndex(s); m != nil {
			out, rc := s[:m[0]], s[m[2]:m[3]]
			if rc != "0" {
				return out, fmt.Errorf("exit status %s", rc)
			}
			return out, nil
		}
		if !time.Now().Before(deadline) {
			return s, fmt.Errorf("no answer within %v", timeout)
		}
		g.cond.Wait()
	}
}

func (g *systemdGuest) consoleTail() string {
	b, _ := os.ReadFile(g.console)
	if len(b) > 6000 {
		b = b[len(b)-6000:]
	}
	return string(b)
}
