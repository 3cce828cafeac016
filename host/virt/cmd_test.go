package virt

import (
	"bytes"
	"errors"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/vtrace/vtrace/host/domxml"
	"github.com/vtrace/vtrace/host/fifo"
	"github.com/vtrace/vtrace/internal/testutil"
	"github.com/vtrace/vtrace/proto/channel"
)

// noDaemon is the default URI of every vtrace the tests run: a socket that
// does not exist, so that a command without -c (or env) never reaches the
// machine's own libvirtd.
const noDaemon = "LIBVIRT_DEFAULT_URI=qemu:///system?socket=/nonexistent/vtrace-test/libvirt-sock"

// vtrace runs the built binary with env added to the environment and
// returns its output and exit code.
func vtrace(t *testing.T, env []string, args ...string) (string, int) {
	t.Helper()
	return run(t, exec.Command(testutil.BuildVtrace(t), args...), env)
}

// vtraceIn runs the built binary in the network namespace of the private
// libvirtd d, as its TCP and ssh clients must.
func vtraceIn(t *testing.T, d *testutil.Libvirtd, env []string, args ...string) (string, int) {
	t.Helper()
	return run(t, d.Command(testutil.BuildVtrace(t), args...), env)
}

func run(t *testing.T, cmd *exec.Cmd, env []string) (string, int) {
	t.Helper()
	cmd.Env = append(append(os.Environ(), noDaemon), env...)
	out, err := cmd.CombinedOutput()
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		return string(out), ee.ExitCode()
	}
	if err != nil {
		t.Fatal(err)
	}
	return string(out), 0
}

func TestIntegrationBinarySetupTeardown(t *testing.T) {
	c, d := connect(t)
	name := define(t, c, 2, guestAgent)
	dir := filepath.Join(t.TempDir(), name)
	orig := inactive(t, c, name)
	env := []string{"LIBVIRT_DEFAULT_URI=" + d.URI}

	out, code := vtrace(t, env, "host", "setup", "--dry-run", "--dir", dir, name)
	if code != 0 || !strings.Contains(out, "would create") || !strings.Contains(out, "+      <target type='virtio' name='trace-path-cpu1'/>") {
		t.Errorf("setup --dry-run: exit %d\n%s", code, out)
	}
	if !bytes.Equal(inactive(t, c, name), orig) {
		t.Error("setup --dry-run changed the XML")
	}

	// The URI comes from $LIBVIRT_DEFAULT_URI when -c is not given.
	out, code = vtrace(t, env, "host", "setup", "--dir", dir, "--group", "root", name)
	if code != 0 || !strings.Contains(out, "redefined") || !strings.Contains(out, "channels: agent-ctl-path trace-path-cpu0 trace-path-cpu1") {
		t.Errorf("setup: exit %d\n%s", code, out)
	}
	checkFIFOs(t, dir, []string{"agent-ctl-path", "trace-path-cpu0", "trace-path-cpu1"})

	out, code = vtrace(t, nil, "host", "setup", "-c", d.URI, "--dir", dir, name)
	if code != 0 || !strings.Contains(out, "nothing to change") {
		t.Errorf("second setup: exit %d\n%s", code, out)
	}

	out, code = vtrace(t, env, "host", "teardown", "--dir", dir, name)
	if code != 0 || !strings.Contains(out, "removed") {
		t.Errorf("teardown: exit %d\n%s", code, out)
	}
	if after := inactive(t, c, name); !bytes.Equal(after, orig) {
		t.Errorf("teardown did not restore the definition:\n%s", domxml.Diff("original", "after", orig, after))
	}
	if _, err := os.Lstat(dir); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("FIFO directory left: %v", err)
	}
	out, code = vtrace(t, env, "host", "teardown", "--dir", dir, name)
	if code != 0 || !strings.Contains(out, "nothing to change") {
		t.Errorf("second teardown: exit %d\n%s", code, out)
	}
}

func TestIntegrationBinaryRefusesNames(t *testing.T) {
	testutil.NeedRoot(t)
	base := t.TempDir()
	// A URI that cannot connect: a refusal must come before any attempt.
	bogus := "qemu:///system?socket=" + filepath.Join(base, "no-socket")
	for _, name := range []string{"../x", "a/b", ".", "..", "a\nb", "-rf"} {
		for _, cmd := range []string{"setup", "teardown"} {
			out, code := vtrace(t, nil, "host", cmd, "-c", bogus, "--", name)
			if code != 2 || !strings.Contains(out, "not safe") || strings.Contains(out, "connect") {
				t.Errorf("%s %q: exit %d\n%s", cmd, name, code, out)
			}
		}
	}
	if ents, _ := os.ReadDir(base); len(ents) != 0 {
		t.Errorf("hostile names made %v", ents)
	}
	out, code := vtrace(t, nil, "host", "setup", "-c", bogus, "vm1")
	if code != 1 || !strings.Contains(out, "connect to libvirt") {
		t.Errorf("setup with a dead URI: exit %d\n%s", code, out)
	}
}

func TestIntegrationBinaryQemuArgs(t *testing.T) {
	out, code := vtrace(t, nil, "host", "qemu-args", "--cpus", "2", "--dir", "/tmp/vt trace")
	want := domxml.FormatQemuArgs(domxml.QemuArgs("/tmp/vt trace", 2))
	if code != 0 || out != want {
		t.Errorf("qemu-args: exit %d\n%s\nwant\n%s", code, out, want)
	}
	if !strings.Contains(out, "-chardev 'pipe,id=vtrace1,path=/tmp/vt trace/trace-path-cpu0' \\\n") {
		t.Errorf("qemu-args output:\n%s", out)
	}
	if _, code := vtrace(t, nil, "host", "qemu-args"); code != 2 {
		t.Errorf("qemu-args without --cpus: exit %d, want 2", code)
	}
}

// TestIntegrationQemuArgsAccepted pastes the printed options into a shell
// command line and has qemu build the devices and list them over QMP.
func TestIntegrationQemuArgsAccepted(t *testing.T) {
	testutil.NeedProgram(t, "qemu-system-x86_64", "qemu-system-x86")
	dir := filepath.Join(t.TempDir(), "fifo dir")
	out, code := vtrace(t, nil, "host", "qemu-args", "--cpus", "2", "--dir", dir, "--create")
	if code != 0 {
		t.Fatalf("qemu-args --create: exit %d\n%s", code, out)
	}
	names, err := fifo.Names(dir)
	if err != nil || len(names) != len(channel.Names(2)) {
		t.Fatalf("qemu-args --create made %v (%v), want the FIFOs of %v", names, err, channel.Names(2))
	}
	if out, code = vtrace(t, nil, "host", "qemu-args", "--cpus", "2", "--dir", dir); code != 0 {
		t.Fatalf("qemu-args: exit %d\n%s", code, out)
	}
	script := "exec qemu-system-x86_64 -M pc -accel tcg -S -nodefaults -display none -qmp stdio \\\n" + out
	cmd := exec.Command("bash", "-c", script)
	cmd.Stdin = strings.NewReader(`{"execute":"qmp_capabilities"}
{"execute":"qom-list","arguments":{"path":"/machine/peripheral"}}
{"execute":"quit"}
`)
	got, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("qemu refused the options: %v\n%s", err, got)
	}
	for _, id := range []string{"vtrace-serial0", "vtrace0-port", "vtrace1-port", "vtrace2-port"} {
		if !strings.Contains(string(got), `"name": "`+id+`"`) {
			t.Errorf("qemu has no device %s:\n%s", id, got)
		}
	}
}
