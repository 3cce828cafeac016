package e2e

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/vtrace/vtrace/host/fifo"
	"github.com/vtrace/vtrace/host/virt"
	"github.com/vtrace/vtrace/internal/testutil"
	"github.com/vtrace/vtrace/internal/vmtest"
)

// TestMain stops the private libvirtd the libvirt tests started and
// removes the built vtrace.
func TestMain(m *testing.M) { testutil.Main(m, testutil.StopLibvirtds) }

// The ids of the host user that collects without root in the libvirt test:
// a member of collectGroup only. Numeric ids need no entry in /etc/passwd.
const (
	collectGroup = 54321
	collectUser  = 54322
)

// libvirtWork is a directory that qemu's user (and collectUser) may pass
// through, holding the guest's kernel and initramfs, its console log and a
// copy of vtrace that collectUser may run.
type libvirtWork struct {
	dir, kernel, initrd, console, vtrace string
}

func newLibvirtWork(t *testing.T) libvirtWork {
	t.Helper()
	needLibvirtGuest(t)
	repo := testutil.Repo(t)
	bin := testutil.BuildVtrace(t)
	guest := os.Getenv("VTRACE_GUEST_DIR")
	if guest == "" {
		guest = filepath.Join(repo, "build", "guest")
	}
	cmd := exec.Command("bash", filepath.Join(repo, "scripts", "build-guest.sh"), "-o", guest)
	cmd.Env = append(os.Environ(), "VTRACE_BIN="+bin)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("scripts/build-guest.sh: %v\n%s", err, out)
	}
	dir, err := os.MkdirTemp("", "vtrace-e2e-libvirt-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	w := libvirtWork{dir: dir, kernel: filepath.Join(dir, "vmlinuz"), initrd: filepath.Join(dir, "initramfs.gz"),
		console: filepath.Join(dir, "console.log"), vtrace: filepath.Join(dir, "vtrace")}
	if err := os.Chmod(dir, 0o711); err != nil {
		t.Fatal(err)
	}
	for from, to := range map[string]string{filepath.Join(guest, "vmlinuz"): w.kernel,
		filepath.Join(guest, "initramfs.gz"): w.initrd, bin: w.vtrace} {
		if err := copyFile(from, to, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	return w
}

func needLibvirtGuest(t *testing.T) {
	t.Helper()
	testutil.NeedProgram(t, "qemu-system-x86_64", "qemu-system-x86")
	_, err := os.Stat("/bin/busybox")
	testutil.Need(t, err == nil, "busybox-static", "apt-get install -y --no-install-recommends busybox-static")
	kernels, _ := filepath.Glob("/boot/vmlinuz-*")
	testutil.Need(t, len(kernels) > 0, "a Debian kernel in /boot", "apt-get install -y --no-install-recommends linux-image-amd64")
}

func copyFile(from, to string, perm os.FileMode) error {
	in, err := os.Open(from)
	if err != nil {
		return err
	}
	defer in.Close()
	out, err := os.OpenFile(to, os.O_WRONLY|os.O_CREATE|os.O_EXCL, perm)
	if err != nil {
		return err
	}
	if _, err := io.Copy(out, in); err != nil {
		out.Close()
		return err
	}
	return out.Close()
}

// domainXML is a domain that boots the test guest directly
// (vmtest.Domain), its workload running from the command line (no test
// port), its console in w.console. Its ring buffer is 8 MiB a CPU: under
// TCG, on a machine whose two cores also run the collector and other
// tests, the guest's agent may get no CPU for longer than the kernel's
// default 1.4 MiB lasts at the workload's rate.
func (w libvirtWork) domainXML(name string, cpus, seconds int) string {
	return vmtest.Domain{Name: name, CPUs: cpus, Kernel: w.kernel, Initrd: w.initrd, Console: w.console,
		Args: fmt.Sprintf("vtrace.test=0 vtrace.heartbeat=1 vtrace.buffer_kb=8192 vtrace.workload=spawn vtrace.seconds=%d", seconds)}.XML()
}

// waitReady waits (60 s at most) for VTRACE-READY in the console log,
// emptied before each boot.
func (w libvirtWork) waitReady() error {
	ready, fatal := regexp.MustCompile(`(?m)^VTRACE-READY`), regexp.MustCompile(`(?m)^VTRACE-FATAL.*`)
	deadline := time.Now().Add(60 * time.Second)
	for time.Now().Before(deadline) {
		b, _ := os.ReadFile(w.console)
		if ready.Match(b) {
			return nil
		}
		if m := fatal.Find(b); m != nil {
			return fmt.Errorf("the guest's init failed: %s", m)
		}
		time.Sleep(100 * time.Millisecond)
	}
	return errors.New("no VTRACE-READY on the console within 60 s")
}

// fifoOwners returns "UID:GID" of every FIFO in dir.
func fifoOwners(t *testing.T, dir string) map[string]string {
	t.Helper()
	ents, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	o := map[string]string{}
	for _, e := range ents {
		st, err := os.Lstat(filepath.Join(dir, e.Name()))
		if err != nil {
			t.Fatal(err)
		}
		if st.Mode()&fs.ModeNamedPipe != 0 {
			s := st.Sys().(*syscall.Stat_t)
			o[e.Name()] = fmt.Sprintf("%d:%d", s.Uid, s.Gid)
		}
	}
	return o
}

// TestIntegrationLibvirt runs vtrace against a private libvirtd with the
// distribution's default qemu.conf (qemu as an unprivileged user, libvirt's
// DAC driver handing it the channel FIFOs, remember_owner on): `vtrace host
// setup --group G` of a domain booting the test guest, a start, a lossless
// `vtrace host collect --start DOMAIN` by a user who is not root but in G,
// a destroy (libvirt puts the FIFOs' owners back), a second start and
// collect of the same domain, a destroy, and `vtrace host teardown`.
func TestIntegrationLibvirt(t *testing.T) {
	logDuration(t)
	d := testutil.PrivateLibvirtd(t, false)
	w := newLibvirtWork(t)
	const cpus = 2
	name := fmt.Sprintf("vtrace-e2e-%d", os.Getpid())
	dir, err := fifo.DomainDir("", name)
	if err != nil {
		t.Fatal(err)
	}
	_, baseErr := os.Lstat(fifo.DefaultBase)
	c, err := virt.Connect(d.URI)
	if err != nil {
		t.Fatal(err)
	}
	l := c.Libvirt()
	dom, err := l.DomainDefineXML(w.domainXML(name, cpus, 120))
	if err != nil {
		t.Fatalf("define %s: %v", name, err)
	}
	t.Cleanup(func() {
		if a, _ := l.DomainIsActive(dom); a != 0 {
			l.DomainDestroy(dom)
		}
		exec.Command(w.vtrace, "host", "teardown", "-c", d.URI, name).Run()
		l.DomainUndefine(dom)
		c.Close()
		// setup made the base directory: leave the machine as it was.
		if errors.Is(baseErr, fs.ErrNotExist) {
			os.Remove(fifo.DefaultBase)
		}
	})

	out := vtrace(t, "host", "setup", "-c", d.URI, "--group", fmt.Sprint(collectGroup), name)
	t.Logf("vtrace host setup:\n%s", out)
	if strings.Contains(out, "warning:") {
		t.Errorf("setup in the default directory warns:\n%s", out)
	}
	st, err := os.Stat(dir)
	if err != nil {
		t.Fatal(err)
	}
	if s := st.Sys().(*syscall.Stat_t); st.Mode() != fs.ModeDir|fifo.DirPerm || s.Gid != collectGroup {
		t.Errorf("%s: mode %v group %d, want %v group %d", dir, st.Mode(), s.Gid, fs.ModeDir|fifo.DirPerm, collectGroup)
	}
	set := fifoOwners(t, dir)
	if len(set) != 2*(1+cpus) {
		t.Fatalf("FIFOs in %s: %v", dir, set)
	}

	for round := 1; round <= 2; round++ {
		for boot := 1; ; boot++ {
			if err := os.Truncate(w.console, 0); err != nil && !errors.Is(err, fs.ErrNotExist) {
				t.Fatal(err)
			}
			if err := l.DomainCreate(dom); err != nil {
				t.Fatalf("round %d: start %s: %v", round, name, err)
			}
			err := w.waitReady()
			if err == nil {
				break
			}
			b, _ := os.ReadFile(w.console)
			if boot == 2 || bytes.Contains(b, []byte("VTRACE-BOOT")) {
				t.Fatalf("round %d: %v; console:\n%s", round, err, b)
			}
			// A TCG boot that showed no sign of life: once more, as vmtest does.
			t.Logf("round %d: the guest showed no sign of life in 60 s; starting it again", round)
			l.DomainDestroy(dom)
		}
		for f, o := range fifoOwners(t, dir) {
			if o == set[f] {
				t.Errorf("round %d: %s keeps its owner %s while the domain runs: libvirt did not hand it to qemu", round, f, o)
			}
		}

		capture := filepath.Join(w.dir, fmt.Sprintf("capture%d", round))
		if err := os.Mkdir(capture, 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.Chown(capture, collectUser, collectUser); err != nil {
			t.Fatal(err)
		}
		col := collectAs(t, w.vtrace, "host", "collect", "--start", name, "-o", capture, "--duration", "4s", "--quiet")
		t.Logf("round %d: vtrace host collect as uid %d in group %d:\n%s", round, collectUser, collectGroup, col.stdout.String())
		got := scanCaptures(t, cpus, capture)
		rows, lost := col.summary(cpus)
		for cpu := range got {
			if got[cpu].Events == 0 || rows[cpu].Read != uint64(got[cpu].Events) || rows[cpu].Overrun+rows[cpu].Dropped != 0 ||
				got[cpu].MissedPages != 0 {
				t.Errorf("round %d, cpu %d: %d events in the capture, the agent read %d (overrun %d, dropped %d), %d pages flagged with missed events",
					round, cpu, got[cpu].Events, rows[cpu].Read, rows[cpu].Overrun, rows[cpu].Dropped, got[cpu].MissedPages)
			}
		}
		if lost != 0 || strings.Contains(col.stdout.String(), "WARNING") {
			t.Errorf("round %d: collect warns of lost events:\n%s", round, col.stdout.String())
		}

		if err := l.DomainDestroy(dom); err != nil {
			t.Fatal(err)
		}
		if got := fifoOwners(t, dir); fmt.Sprint(got) != fmt.Sprint(set) {
			t.Errorf("round %d: FIFO owners after the domain stopped %v, want them back to %v", round, got, set)
		}
	}

	out = vtrace(t, "host", "teardown", "-c", d.URI, name)
	if _, err := os.Lstat(dir); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("teardown left %s (%v):\n%s", dir, err, out)
	}
}

// collectAs runs vtrace as collectUser with collectGroup as its only
// supplementary group (not root), to its end (120 s at most), and returns
// it as a collector whose summary can be read.
func collectAs(t *testing.T, bin string, args ...string) *collector {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 120*time.Second)
	defer cancel()
	c := &collector{t: t, done: make(chan struct{})}
	cmd := exec.CommandContext(ctx, bin, args...)
	cmd.Dir = "/"
	cmd.Stdout, cmd.Stderr = &c.stdout, &c.stderr
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: collectUser, Gid: collectUser, Groups: []uint32{collectGroup}}}
	if err := cmd.Run(); err != nil {
		t.Fatalf("vtrace %s as uid %d: %v\n%s%s", strings.Join(args, " "), collectUser, err, c.stdout.String(), c.stderr.String())
	}
	close(c.done)
	return c
}

// TestIntegrationLibvirtDemo runs scripts/demo-libvirt.sh, a user's action,
// against the private libvirtd (-C): define, setup, start, collect, destroy,
// teardown, undefine. Every CPU's stream must parse and hold events, and the
// domain and its FIFO directory must be gone at the end.
func TestIntegrationLibvirtDemo(t *testing.T) {
	logDuration(t)
	d := testutil.PrivateLibvirtd(t, false)
	needLibvirtGuest(t)
	repo := testutil.Repo(t)
	name := fmt.Sprintf("vtrace-demo-%d", os.Getpid())
	out := filepath.Join(t.TempDir(), "capture")
	_, baseErr := os.Lstat(fifo.DefaultBase)
	t.Cleanup(func() {
		if errors.Is(baseErr, fs.ErrNotExist) {
			os.Remove(fifo.DefaultBase)
		}
	})

	cmd := exec.Command("bash", filepath.Join(repo, "scripts", "demo-libvirt.sh"), "-C", d.URI, "-n", name, "-o", out, "-d", "4")
	cmd.Env = append(os.Environ(), "VTRACE_BIN="+testutil.BuildVtrace(t))
	output, err := cmd.CombinedOutput()
	t.Logf("scripts/demo-libvirt.sh:\n%s", output)
	if err != nil {
		t.Fatalf("scripts/demo-libvirt.sh: %v", err)
	}
	for cpu := 0; cpu < 2; cpu++ {
		c := scanRaw(t, filepath.Join(out, fmt.Sprintf("cpu%d.raw", cpu)))
		if c.Events == 0 || c.Partial != 0 {
			t.Errorf("cpu %d: %d events in %d pages, %d bytes of a partial page; want events in whole pages", cpu, c.Events, c.Pages, c.Partial)
		}
	}
	if out, err := exec.Command("virsh", "-c", d.URI, "dominfo", name).CombinedOutput(); err == nil {
		t.Errorf("domain %s still defined after the script:\n%s", name, out)
	}
	if _, err := os.Stat(filepath.Join(fifo.DefaultBase, name)); !os.IsNotExist(err) {
		t.Errorf("FIFO directory %s/%s left behind (%v)", fifo.DefaultBase, name, err)
	}
	if bytes.Contains(output, []byte("warning:")) {
		t.Errorf("the demo's setup warns")
	}
}
