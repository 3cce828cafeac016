// Package docs holds vtrace's documentation; its test runs the commands of
// the user guide (guide.md) against real guests, so that the guide cannot
// drift from what vtrace does.
package docs

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/vtrace/vtrace/host/fifo"
	"github.com/vtrace/vtrace/host/virt"
	"github.com/vtrace/vtrace/internal/testutil"
	"github.com/vtrace/vtrace/internal/vmtest"
)

// notRun are the guide's shell blocks no test runs, by their first line,
// and why. Every other ```sh block must be marked vtrace-test=FIXTURE.
var notRun = map[string]string{
	"make install PREFIX=/usr/local":      "installs on this machine: dist's TestIntegrationMakeInstall runs it into a DESTDIR",
	"vtrace-guest install --now":          "runs in a guest: dist's TestIntegrationInitScript and TestIntegrationSystemdUnit install it there",
	"DIR=/tmp/virtio-trace":               "the test gives DIR: the test guest's FIFO directory",
	"qemu-system-x86_64 -accel kvm -m 1G": "boots a guest: the test boots one the same way (scripts/run-guest.sh, with these options)",
	"DOMAIN=mydomain":                     "the test gives DOMAIN: a domain it defines in a private libvirtd",
	"kernelshark capture/trace.dat":       "a graphical program",
	"kernelshark timeline/host.dat":       "a graphical program (internal/e2e's timeline test opens such a pair in KernelShark)",
}

// mergedLine is an event line of a report of several files: the file's
// name, then the event, its timestamp after the CPU.
var mergedLine = regexp.MustCompile(`(?m)^\s*(host\.dat|trace\.dat):.*\[\d+\]\s+(?:\S+\s+)?(\d+\.\d+):`)

// block is one fenced shell block of the guide.
type block struct {
	line    int    // of the opening fence
	fixture string // vtrace-test=FIXTURE; "" when not marked
	text    string
}

var fence = regexp.MustCompile("^```(\\S*)\\s*(.*)$")

func readGuide(t *testing.T) []block {
	t.Helper()
	f, err := os.Open("guide.md")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var blocks []block
	var cur *block
	var lang string
	sc := bufio.NewScanner(f)
	for n := 1; sc.Scan(); n++ {
		line := sc.Text()
		m := fence.FindStringSubmatch(line)
		switch {
		case cur == nil && m != nil:
			lang = m[1]
			cur = &block{line: n}
			if fx, ok := strings.CutPrefix(m[2], "vtrace-test="); ok {
				cur.fixture = fx
			} else if m[2] != "" {
				t.Errorf("guide.md:%d: fence info %q: want nothing or vtrace-test=FIXTURE", n, m[2])
			}
		case cur != nil && line == "```":
			if lang == "sh" {
				blocks = append(blocks, *cur)
			} else if cur.fixture != "" {
				t.Errorf("guide.md:%d: a %q block marked to run: only sh blocks run", cur.line, lang)
			}
			cur = nil
		case cur != nil:
			cur.text += line + "\n"
		}
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	if cur != nil {
		t.Fatalf("guide.md:%d: a block is not closed", cur.line)
	}
	return blocks
}

// TestGuideBlocksAccounted: every shell block of the guide is run by a
// fixture or listed in notRun, and notRun lists only blocks that exist.
func TestGuideBlocksAccounted(t *testing.T) {
	seen := map[string]bool{}
	for _, b := range readGuide(t) {
		first, _, _ := strings.Cut(b.text, "\n")
		switch {
		case b.fixture == "qemu" || b.fixture == "libvirt":
		case b.fixture != "":
			t.Errorf("guide.md:%d: unknown fixture %q (want qemu or libvirt)", b.line, b.fixture)
		default:
			found := false
			for prefix := range notRun {
				if strings.HasPrefix(first, prefix) {
					seen[prefix], found = true, true
				}
			}
			if !found {
				t.Errorf("guide.md:%d: block %q is neither marked vtrace-test=FIXTURE nor listed in notRun", b.line, first)
			}
		}
	}
	for prefix := range notRun {
		if !seen[prefix] {
			t.Errorf("notRun lists %q, which no block of the guide starts with", prefix)
		}
	}
}

// script is the fixture's blocks, in the guide's order, as one bash script
// that stops at the first failing command.
func script(t *testing.T, fixture string) string {
	t.Helper()
	var sb strings.Builder
	sb.WriteString("set -euo pipefail\n")
	// head reads its input to the end, so that pipefail reports the
	// writer's own status rather than the SIGPIPE a user never sees.
	sb.WriteString("head() { command head \"$@\"; cat >/dev/null; }\n")
	n := 0
	for _, b := range readGuide(t) {
		if b.fixture == fixture {
			fmt.Fprintf(&sb, "echo '### guide.md:%d'\n%s", b.line, b.text)
			n++
		}
	}
	if n == 0 {
		t.Fatalf("guide.md has no block for fixture %q", fixture)
	}
	return sb.String()
}

// runScript runs the fixture's script with bash in a new directory, vtrace
// (the host binary) first on PATH, env added, within bound; the whole
// process group is killed at the end.
func runScript(t *testing.T, fixture string, bound time.Duration, env ...string) string {
	t.Helper()
	bin := testutil.BuildVtrace(t)
	work := t.TempDir()
	ctx, cancel := context.WithTimeout(context.Background(), bound)
	defer cancel()
	cmd := exec.CommandContext(ctx, "bash", "-c", script(t, fixture))
	cmd.Dir = work
	cmd.Env = append(append(os.Environ(), "PATH="+filepath.Dir(bin)+":"+os.Getenv("PATH")), env...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) }
	var out strings.Builder
	cmd.Stdout, cmd.Stderr = &out, &out
	begin := time.Now()
	err := cmd.Run()
	if cmd.Process != nil {
		syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) // anything the script left in the background
	}
	t.Logf("the guide's %s blocks ran in %.1fs:\n%s", fixture, time.Since(begin).Seconds(), out.String())
	if err != nil {
		t.Fatalf("the guide's %s blocks: %v (output above)", fixture, err)
	}
	return work
}

// TestIntegrationGuideQemu runs the guide's qemu blocks against the test
// guest, its FIFO directory as $DIR, and a second guest of 1 vCPU, its
// directory as $DIR2, for the blocks of several guests.
func TestIntegrationGuideQemu(t *testing.T) {
	testutil.NeedProgram(t, "trace-cmd", "trace-cmd")
	g := vmtest.Boot(t, vmtest.Options{CPUs: 2})
	g2 := vmtest.Boot(t, vmtest.Options{CPUs: 1})
	work := runScript(t, "qemu", 5*time.Minute, "DIR="+g.Dir, "DIR2="+g2.Dir)
	for _, f := range []string{"capture/trace.dat", "capture/trace-v7.dat", "capture-sched/trace.dat", "raw/trace.dat", "raw/meta",
		"capture-by-hand/cpu0.raw", "capture-two/web/trace.dat", "capture-two/db/cpu0.raw", "capture-two/host.dat", "capture-two/db.dat"} {
		if _, err := os.Stat(filepath.Join(work, f)); err != nil {
			t.Errorf("the guide's commands made no %s: %v", f, err)
		}
	}
}

// TestIntegrationGuideLibvirt runs the guide's libvirt blocks against a
// domain of a private libvirtd that boots the test guest, as $DOMAIN, the
// daemon as $LIBVIRT_DEFAULT_URI.
func TestIntegrationGuideLibvirt(t *testing.T) {
	testutil.NeedProgram(t, "trace-cmd", "trace-cmd")
	testutil.NeedProgram(t, "virsh", "libvirt-clients")
	d := testutil.PrivateLibvirtd(t, false)
	repo := testutil.Repo(t)
	guest := os.Getenv("VTRACE_GUEST_DIR")
	if guest == "" {
		guest = filepath.Join(repo, "build", "guest")
	}
	cmd := exec.Command("bash", filepath.Join(repo, "scripts", "build-guest.sh"), "-o", guest)
	cmd.Env = append(os.Environ(), "VTRACE_BIN="+testutil.BuildVtrace(t))
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("scripts/build-guest.sh: %v\n%s", err, out)
	}
	// Boot files qemu's user can read (libvirt hands them to it).
	boot, err := os.MkdirTemp("", "vtrace-guide-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(boot) })
	if err := os.Chmod(boot, 0o711); err != nil {
		t.Fatal(err)
	}
	for _, f := range []string{"vmlinuz", "initramfs.gz"} {
		b, err := os.ReadFile(filepath.Join(guest, f))
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(boot, f), b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	name := fmt.Sprintf("vtrace-guide-%d", os.Getpid())
	_, baseErr := os.Lstat(fifo.DefaultBase)
	c, err := virt.Connect(d.URI)
	if err != nil {
		t.Fatal(err)
	}
	l := c.Libvirt()
	dom, err := l.DomainDefineXML(vmtest.Domain{Name: name, CPUs: 2, Kernel: filepath.Join(boot, "vmlinuz"),
		Initrd: filepath.Join(boot, "initramfs.gz"), Args: "vtrace.test=0 vtrace.workload=spawn vtrace.seconds=600",
		Console: filepath.Join(boot, "console.log"), VirtioSerial: true}.XML())
	if err != nil {
		t.Fatalf("define %s: %v", name, err)
	}
	t.Cleanup(func() {
		if a, _ := l.DomainIsActive(dom); a != 0 {
			l.DomainDestroy(dom)
		}
		exec.Command(testutil.BuildVtrace(t), "host", "teardown", "-c", d.URI, name).Run()
		l.DomainUndefine(dom)
		c.Close()
		if errors.Is(baseErr, fs.ErrNotExist) {
			os.Remove(fifo.DefaultBase) // setup made it: leave the machine as it was
		}
		if t.Failed() {
			b, _ := os.ReadFile(filepath.Join(boot, "console.log"))
			t.Logf("console:\n%s", b)
		}
	})
	work := runScript(t, "libvirt", 5*time.Minute, "DOMAIN="+name, "LIBVIRT_DEFAULT_URI="+d.URI)
	for _, f := range []string{"capture/trace.dat", "capture-live/trace.dat"} {
		if _, err := os.Stat(filepath.Join(work, f)); err != nil {
			t.Errorf("the guide's commands made no %s: %v", f, err)
		}
	}
	// The merged report holds both files' events, the guest's moved onto
	// the host's clock: its first event lies within the host's.
	merged, err := os.ReadFile(filepath.Join(work, "timeline", "merged.txt"))
	if err != nil {
		t.Fatal(err)
	}
	first := map[string]float64{}
	last := map[string]float64{}
	for _, m := range mergedLine.FindAllStringSubmatch(string(merged), -1) {
		ts, _ := strconv.ParseFloat(m[2], 64)
		if _, ok := first[m[1]]; !ok {
			first[m[1]] = ts
		}
		last[m[1]] = ts
	}
	if len(first) != 2 || first["trace.dat"] < first["host.dat"] || first["trace.dat"] > last["host.dat"] {
		t.Errorf("the merged report's events: first %v, last %v: want both files, the guest's inside the host's", first, last)
	}
	dir, _ := fifo.DomainDir("", name)
	if _, err := os.Lstat(dir); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("the guide's teardown left %s (%v)", dir, err)
	}
}

// TestMain stops the private libvirtd the libvirt test started.
func TestMain(m *testing.M) { testutil.Main(m, testutil.StopLibvirtds) }
