package main

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/vtrace/vtrace/host/fifo"
	"github.com/vtrace/vtrace/internal/testutil"
	"github.com/vtrace/vtrace/proto/channel"
)

// failsSaying runs the command line as main does and wants exit code 1 with
// every one of wants in the error.
func failsSaying(t *testing.T, args []string, wants ...string) {
	t.Helper()
	var stdout, stderr bytes.Buffer
	if got := execute(context.Background(), args, &stdout, &stderr); got != 1 {
		t.Fatalf("vtrace %q: exit code %d, want 1\nstdout: %s\nstderr: %s", args, got, stdout.String(), stderr.String())
	}
	saysAll(t, "vtrace "+strings.Join(args, " "), stderr.String(), wants...)
}

func saysAll(t *testing.T, what, msg string, wants ...string) {
	t.Helper()
	t.Logf("%s: %s", what, strings.TrimSpace(msg))
	for _, w := range wants {
		if !strings.Contains(msg, w) {
			t.Errorf("%s: the error does not say %q:\n%s", what, w, msg)
		}
	}
}

// channelFIFOs makes a domain's FIFO directory for 1 CPU, as setup does.
func channelFIFOs(t *testing.T) string {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "vm1")
	if _, err := fifo.Create(dir, channel.Names(1), fifo.Options{Group: -1}); err != nil {
		t.Fatal(err)
	}
	return dir
}

// The errors a user meets first, each with what to do about it.

func TestErrorNoLibvirtd(t *testing.T) {
	uri := "qemu:///system?socket=" + filepath.Join(t.TempDir(), "libvirt-sock")
	failsSaying(t, []string{"host", "setup", "vm1", "-c", uri}, "connect to libvirt", "is libvirtd running?", "systemctl start libvirtd")
}

func TestErrorDomainNotFound(t *testing.T) {
	d := testutil.PrivateLibvirtd(t, false)
	failsSaying(t, []string{"host", "setup", "vtrace-no-such-domain", "-c", d.URI, "--dir", filepath.Join(t.TempDir(), "fifos")},
		`domain "vtrace-no-such-domain"`, "no such domain", "virsh -c '"+d.URI+"' list --all", "--connect")
}

// TestErrorGuestNotRunning: FIFOs that no qemu holds open.
func TestErrorGuestNotRunning(t *testing.T) {
	dir := channelFIFOs(t)
	for _, args := range [][]string{{"host", "start", "--dir", dir, "--timeout", "300ms"},
		{"host", "status", "--dir", dir, "--timeout", "300ms"}} {
		failsSaying(t, args, "no reader", "start the domain", "restart it")
	}
}

// TestErrorAgentNotRunning: qemu holds the FIFOs (as it does from the
// domain's start), but no agent answers in the guest.
func TestErrorAgentNotRunning(t *testing.T) {
	dir := channelFIFOs(t)
	for _, name := range []string{channel.Ctl + ".in", channel.Ctl + ".out"} {
		f, err := os.OpenFile(filepath.Join(dir, name), os.O_RDWR, 0)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { f.Close() })
	}
	failsSaying(t, []string{"host", "status", "--dir", dir, "--handshake-timeout", "300ms", "--timeout", "2s"},
		"no vtrace agent answered", "start the agent in the guest", "systemctl start vtrace-agent", "vtrace-guest agent")
	// start and stop fall back to the line protocol, and say so.
	var stdout, stderr bytes.Buffer
	if got := execute(context.Background(), []string{"host", "stop", "--dir", dir, "--handshake-timeout", "300ms"}, &stdout, &stderr); got != 0 {
		t.Fatalf("vtrace host stop: exit code %d, want 0\n%s", got, stderr.String())
	}
	saysAll(t, "vtrace host stop", stderr.String(), "no vtrace agent answered", "line protocol", "systemctl start vtrace-agent")
}

// TestErrorFIFOPermission: a user outside the FIFOs' group.
func TestErrorFIFOPermission(t *testing.T) {
	testutil.NeedRoot(t)
	dir := channelFIFOs(t)
	reachable(t, filepath.Dir(dir), 0o755) // as /var/lib/vtrace is
	bin := filepath.Join(t.TempDir(), "vtrace")
	copyFile(t, testutil.BuildVtrace(t), bin)
	reachable(t, filepath.Dir(bin), 0o755)
	out := filepath.Join(t.TempDir(), "capture")
	reachable(t, filepath.Dir(out), 0o1777)
	// The directory, then (once it is readable) a FIFO.
	for _, mode := range []os.FileMode{0o750, 0o755} {
		if err := os.Chmod(dir, mode); err != nil {
			t.Fatal(err)
		}
		cmd := exec.Command(bin, "host", "collect", "--dir", dir, "-o", out, "--duration", "1s")
		cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: 65534, Gid: 65534}}
		msg, err := cmd.CombinedOutput()
		if err == nil {
			t.Fatalf("vtrace host collect as nobody: no error\n%s", msg)
		}
		what := dir
		if mode == 0o755 {
			what = channel.Data(0) + ".out"
		}
		saysAll(t, "vtrace host collect as nobody", string(msg), what+": permission denied", "run as root", "--group")
	}
}

// TestErrorPortsMissingInGuest: an agent in a guest without the channels.
func TestErrorPortsMissingInGuest(t *testing.T) {
	inst := testutil.Instance(t, "vtrace-errors-test")
	failsSaying(t, []string{"guest", "agent", "--tracefs", inst, "--ports-dir", t.TempDir()},
		"find port "+channel.Ctl, "vtrace host setup <domain>", "restart the domain", "qemu-args")
}

// TestErrorTracefsNotMounted runs the agent in a mount namespace of its own
// in which no tracefs (nor debugfs, which mounts one on access) is mounted.
func TestErrorTracefsNotMounted(t *testing.T) {
	testutil.NeedRoot(t)
	unshare := testutil.NeedProgram(t, "unshare", "util-linux")
	bin := testutil.BuildVtrace(t)
	// mountinfo: ID PARENT MAJ:MIN ROOT MOUNTPOINT OPTIONS [OPTIONAL...] - FSTYPE ...
	script := `mounts() { awk '{ for (i = 7; $i != "-"; i++) ; if ($(i+1) ~ /^(tracefs|debugfs)$/) print $5 }' /proc/self/mountinfo; }
for m in $(mounts | sort -r); do umount -l "$m" || exit 99; done
[ -z "$(mounts)" ] || { echo "still mounted: $(mounts)" >&2; exit 99; }
exec "$0" guest agent --ports-dir "$1"`
	cmd := exec.Command(unshare, "--mount", "--propagation", "private", "sh", "-c", script, bin, t.TempDir())
	msg, err := cmd.CombinedOutput()
	if cmd.ProcessState == nil || cmd.ProcessState.ExitCode() != 1 {
		t.Fatalf("vtrace guest agent without tracefs: %v, want exit status 1\n%s", err, msg)
	}
	saysAll(t, "vtrace guest agent without tracefs", string(msg), "find tracefs: not mounted", "mount -t tracefs nodev /sys/kernel/tracing")
	if _, err := os.Stat("/sys/kernel/tracing/per_cpu"); err != nil {
		t.Errorf("the machine's tracefs is gone after the test: %v", err)
	}
}

// reachable gives dir mode and lets every user reach it: each directory
// above it, up to the system's temporary directory, gets search permission
// (they are the test's own).
func reachable(t *testing.T, dir string, mode os.FileMode) {
	t.Helper()
	if err := os.Chmod(dir, mode); err != nil {
		t.Fatal(err)
	}
	for d := filepath.Dir(dir); strings.HasPrefix(d, os.TempDir()+"/"); d = filepath.Dir(d) {
		if err := os.Chmod(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
}

func copyFile(t *testing.T, src, dst string) {
	t.Helper()
	b, err := os.ReadFile(src)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(dst, b, 0o755); err != nil {
		t.Fatal(err)
	}
}
