// Package vmtest boots vtrace's test guest (scripts/build-guest.sh and
// scripts/run-guest.sh, described in docs/guest.md) under qemu TCG for
// end-to-end tests: the guest's trace ports are FIFOs in Guest.Dir, its
// console is captured, and its init takes commands on the "vtrace-test"
// port.
//
// Lifecycle: Boot builds the guest once per test binary, starts qemu and
// returns when the guest printed VTRACE-READY; a t.Cleanup always kills qemu
// and closes the harness's FIFOs, so no process outlives the test. Open the
// trace FIFOs only after Boot returns. Shutdown powers the guest off first.
package vmtest

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/vtrace/vtrace/internal/sys"
	"github.com/vtrace/vtrace/internal/testutil"
	"github.com/vtrace/vtrace/proto/channel"
)

// TestPort is the name of the port the guest's init takes commands from.
const TestPort = "vtrace-test"

// The guest kernels the tests boot (Options.Kernel): Debian 12's own 6.1
// (linux-image-amd64) and 6.12 from Debian's bookworm-backports suite,
// which scripts/guest-kernel.sh fetches into its cache (scripts/deps.sh
// does that). DefaultKernel is the one of the zero Options.
const (
	Kernel61      = "6.1"
	Kernel612     = "6.12"
	DefaultKernel = Kernel61
)

// Kernels lists every guest kernel series, oldest first: the tests that
// prove the agent's behaviour run once on each.
var Kernels = []string{Kernel61, Kernel612}

// AgentC is Options.Agent for the kernel's own virtio-trace agent
// (tools/virtio/virtio-trace), built from Debian's linux-source by
// scripts/build-c-agent.sh into a guest of its own.
const AgentC = "c"

// Options says how to boot the guest. The zero value boots Debian 12's 6.1
// kernel with 2 vCPUs, the agent running, sched and irq events enabled and
// no workload.
type Options struct {
	Kernel          string        // kernel series, one of Kernels ("": DefaultKernel)
	CPUs            int           // vCPUs (2)
	MemoryMB        int           // guest memory (512)
	Dir             string        // FIFO directory (a new t.TempDir())
	Workload        string        // vtrace.workload, started right after READY ("": none)
	WorkloadSeconds int           // vtrace.seconds (guest default 5)
	Events          string        // vtrace.events (guest default "sched,irq"; "none")
	NoAgent         bool          // vtrace.agent=0: do not start `vtrace guest agent`
	Agent           string        // "": vtrace guest agent; AgentC: the kernel's C agent instead (vtrace.agent=c; not with NoAgent)
	AgentArgs       string        // vtrace.agent_args, added after --verbose
	BufferKB        int           // vtrace.buffer_kb: per-CPU ring buffer size
	Heartbeat       int           // vtrace.heartbeat: seconds between VTRACE-HEARTBEAT lines (0: none)
	Cmdline         []string      // more kernel command line words
	ReadyTimeout    time.Duration // bound on reaching VTRACE-READY, per boot (60s)
	CommandTimeout  time.Duration // default bound on a test-port command (60s)
	QMP             bool          // give qemu a QMP socket (Guest.QMP)
}

// Guest is a running test guest.
type Guest struct {
	Kernel  string            // the kernel series it was asked to boot (Options.Kernel)
	Release string            // the kernel's release as the guest's uname -r says (from VTRACE-BOOT)
	Dir     string            // FIFO directory: Dir/NAME.in and Dir/NAME.out per port
	CPUs    int               // vCPUs
	Ports   map[string]string // port name to guest device (/dev/vportXpY), from VTRACE-PORT
	Boots   int               // boots it took (2 when the first showed no sign of life)
	QMP     string            // qemu's QMP socket, with Options.QMP

	t       testing.TB
	opts    Options
	con     *text // console (and qemu's stderr)
	conFile string

	cmd       *exec.Cmd
	exited    chan struct{} // closed when qemu has exited
	exitErr   error
	bootStart int // console offset where the current boot began
	cursor    int // console offset after WaitFor's last match

	mu      sync.Mutex // serializes commands
	cmdIn   *os.File   // vtrace-test.in
	cmdOut  *os.File   // vtrace-test.out
	replies *text
	ncmd    int
	rcursor int
}

var (
	// What Boot runs; the harness's own tests put stand-ins here.
	buildGuest  = build
	buildCGuest = buildWithCAgent
	runScript   = func(t testing.TB) string { return filepath.Join(testutil.Repo(t), "scripts", "run-guest.sh") }
)

// Boot builds (once per test binary) and boots the guest, failing the test
// if it does not get ready. A boot that shows no sign of life within
// ReadyTimeout is retried once, and the test log says so.
func Boot(t testing.TB, opts Options) *Guest {
	t.Helper()
	if opts.CPUs == 0 {
		opts.CPUs = 2
	}
	if opts.MemoryMB == 0 {
		opts.MemoryMB = 512
	}
	if opts.ReadyTimeout == 0 {
		opts.ReadyTimeout = 60 * time.Second
	}
	if opts.CommandTimeout == 0 {
		opts.CommandTimeout = 60 * time.Second
	}
	if opts.Dir == "" {
		opts.Dir = t.TempDir()
	}
	if opts.Kernel == "" {
		opts.Kernel = DefaultKernel
	}
	if !slices.Contains(Kernels, opts.Kernel) {
		t.Fatalf("boot guest: unknown Options.Kernel %q (want one of %v)", opts.Kernel, Kernels)
	}
	build := buildGuest
	switch opts.Agent {
	case "":
	case AgentC:
		if opts.NoAgent {
			t.Fatal("boot guest: Options.NoAgent and Options.Agent do not combine")
		}
		build = buildCGuest
	default:
		t.Fatalf("boot guest: unknown Options.Agent %q (want \"\" or %q)", opts.Agent, AgentC)
	}
	begin := time.Now()
	dir, bin := build(t, opts.Kernel)
	t.Logf("guest of kernel %s built in %.1fs", opts.Kernel, time.Since(begin).Seconds())
	g := &Guest{Kernel: opts.Kernel, Dir: opts.Dir, CPUs: opts.CPUs, t: t, opts: opts, con: newText(), replies: newText(),
		conFile: filepath.Join(t.TempDir(), "console.log")}
	if err := g.makeFIFOs(); err != nil {
		t.Fatal(err)
	}
	if opts.QMP {
		g.QMP = filepath.Join(t.TempDir(), "qmp.sock")
	}
	t.Cleanup(g.cleanup)
	for g.Boots = 1; ; g.Boots++ {
		begin := time.Now()
		err := g.boot(dir, bin)
		if err == nil {
			t.Logf("guest ready in %.1fs (boot %d)", time.Since(begin).Seconds(), g.Boots)
			break
		}
		if g.Boots == 2 {
			t.Fatalf("boot guest (second try): %v\n%s", err, g.consoleTail(60))
		}
		t.Logf("guest showed no sign of life in %s (%v); rebooting once\n%s",
			time.Since(begin).Round(time.Second), err, g.consoleTail(30))
		g.stop()
	}
	if m := regexp.MustCompile(`(?m)^VTRACE-FATAL .*$`).FindString(g.Console()); m != "" {
		t.Fatalf("guest init failed: %s\n%s", m, g.consoleTail(60))
	}
	if !strings.HasPrefix(g.Release, opts.Kernel+".") {
		t.Fatalf("boot guest: asked for kernel %s, the guest runs %q\n%s", opts.Kernel, g.Release, g.consoleTail(30))
	}
	return g
}

// portNames are the ports run-guest.sh wires, each a FIFO pair.
func (g *Guest) portNames() []string {
	return append(channel.Names(g.CPUs), TestPort)
}

func (g *Guest) makeFIFOs() error {
	if err := os.MkdirAll(g.Dir, 0o755); err != nil {
		return fmt.Errorf("create FIFO directory: %w", err)
	}
	for _, n := range g.portNames() {
		for _, end := range []string{".in", ".out"} {
			p := filepath.Join(g.Dir, n+end)
			if err := sys.Mkfifo(p, 0o600); err != nil && !errors.Is(err, os.ErrExist) {
				return err
			}
		}
	}
	return nil
}

// Path returns the FIFO directory's base path of port name: the host writes
// Path(name)+".in" and reads Path(name)+".out".
func (g *Guest) Path(name string) string { return filepath.Join(g.Dir, name) }

func (g *Guest) boot(guestDir, vtrace string) error {
	var err error
	// O_RDWR: never blocks on a FIFO, and qemu may not have opened it yet.
	if g.cmdIn, err = os.OpenFile(g.Path(TestPort)+".in", os.O_RDWR, 0); err != nil {
		return fmt.Errorf("open test port: %w", err)
	}
	if g.cmdOut, err = os.OpenFile(g.Path(TestPort)+".out", os.O_RDWR, 0); err != nil {
		return fmt.Errorf("open test port: %w", err)
	}
	go g.readReplies(g.cmdOut, g.replies)

	g.bootStart = g.con.len()
	g.cursor = g.bootStart
	g.rcursor = g.replies.len()
	g.ncmd = 0
	g.con.write([]byte(fmt.Sprintf("vmtest: boot %d at %s\n", g.Boots, time.Now().Format(time.TimeOnly))))

	args := []string{runScript(g.t), "-n", "-C", "stdio", "-k", g.Kernel,
		"-c", strconv.Itoa(g.CPUs), "-m", strconv.Itoa(g.opts.MemoryMB),
		"-d", g.Dir, "-g", guestDir, "-a", g.cmdline() + fmt.Sprintf(" vtrace.boot=%d", g.Boots)}
	if g.QMP != "" {
		os.Remove(g.QMP) // an earlier boot's
		args = append(args, "-Q", g.QMP)
	}
	g.cmd = exec.Command("bash", args...)
	g.cmd.Env = append(os.Environ(), "VTRACE_BIN="+vtrace)
	f, err := os.OpenFile(g.conFile, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o644)
	if err != nil {
		return fmt.Errorf("create console log: %w", err)
	}
	g.cmd.Stdout = &tee{g.con, f}
	g.cmd.Stderr = g.cmd.Stdout
	// The script execs qemu; should the test binary die, so does qemu.
	g.cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := g.cmd.Start(); err != nil {
		f.Close()
		return fmt.Errorf("start qemu: %w", err)
	}
	g.exited = make(chan struct{})
	go func(cmd *exec.Cmd, exited chan struct{}) {
		g.exitErr = cmd.Wait()
		f.Close()
		close(exited)
	}(g.cmd, g.exited)

	if _, err := g.WaitFor(`^VTRACE-READY cpus=\d+`, g.opts.ReadyTimeout); err != nil {
		return err
	}
	if m := regexp.MustCompile(`(?m)^VTRACE-BOOT kernel=(\S+) `).FindStringSubmatch(g.Console()[g.bootStart:]); m != nil {
		g.Release = m[1]
	}
	g.Ports = map[string]string{}
	for _, m := range regexp.MustCompile(`(?m)^VTRACE-PORT name=(\S+) dev=(\S+)$`).FindAllStringSubmatch(g.Console()[g.bootStart:], -1) {
		g.Ports[m[1]] = m[2]
	}
	return nil
}

func (g *Guest) cmdline() string {
	w := []string{}
	add := func(k, v string) { w = append(w, "vtrace."+k+"="+v) }
	if g.opts.Workload != "" {
		add("workload", g.opts.Workload)
	}
	if g.opts.WorkloadSeconds > 0 {
		add("seconds", strconv.Itoa(g.opts.WorkloadSeconds))
	}
	if g.opts.Events != "" {
		add("events", g.opts.Events)
	}
	if g.opts.NoAgent {
		add("agent", "0")
	}
	if g.opts.Agent == AgentC {
		add("agent", "c")
	}
	if g.opts.AgentArgs != "" {
		add("agent_args", `"`+g.opts.AgentArgs+`"`)
	}
	if g.opts.BufferKB > 0 {
		add("buffer_kb", strconv.Itoa(g.opts.BufferKB))
	}
	if g.opts.Heartbeat > 0 {
		add("heartbeat", strconv.Itoa(g.opts.Heartbeat))
	}
	return strings.Join(append(w, g.opts.Cmdline...), " ")
}

// Console returns everything the guest printed on its console so far (and
// qemu's own messages), every boot included, without carriage returns.
func (g *Guest) Console() string { return g.con.String() }

// WaitFor waits up to timeout for a console line matching pattern (a regexp;
// ^ and $ match at line boundaries) and returns the match and its
// submatches. Like expect, it looks only after its previous match in this
// boot, so waiting twice for the same marker waits for two lines.
func (g *Guest) WaitFor(pattern string, timeout time.Duration) ([]string, error) {
	m, _, end, err := g.con.wait(pattern, g.cursor, timeout, g.exited)
	if err != nil {
		return nil, fmt.Errorf("wait for guest console: %w", err)
	}
	g.cursor = end
	return m, nil
}

// Pid returns qemu's process id.
func (g *Guest) Pid() int { return g.cmd.Process.Pid }

// Exited is closed when qemu has exited.
func (g *Guest) Exited() <-chan struct{} { return g.exited }

// Shutdown powers the guest off and waits (30s at most) for qemu to exit;
// past that it kills qemu and says so.
func (g *Guest) Shutdown() error {
	select {
	case <-g.exited:
		return fmt.Errorf("shut down guest: qemu had already exited: %v", g.exitErr)
	default:
	}
	if g.cmdIn == nil {
		return errors.New("shut down guest: the guest was stopped")
	}
	if _, err := g.cmdIn.Write([]byte("poweroff\n")); err != nil {
		return fmt.Errorf("shut down guest: %w", err)
	}
	select {
	case <-g.exited:
		if g.exitErr != nil {
			return fmt.Errorf("shut down guest: qemu: %w", g.exitErr)
		}
		return nil
	case <-time.After(30 * time.Second):
		g.stop()
		return errors.New("shut down guest: no power-off within 30s; killed qemu")
	}
}

// stop kills qemu if it runs, waits for it and closes the test port.
func (g *Guest) stop() {
	if g.cmd != nil && g.cmd.Process != nil {
		select {
		case <-g.exited:
		default:
			g.cmd.Process.Kill()
			<-g.exited
		}
	}
	for _, f := range []*os.File{g.cmdIn, g.cmdOut} {
		if f != nil {
			f.Close()
		}
	}
	g.cmdIn, g.cmdOut = nil, nil
}

func (g *Guest) cleanup() {
	g.stop()
	if os.Getenv("VTRACE_VMTEST_CONSOLE") == "1" {
		g.t.Logf("guest console:\n%s", g.Console())
	} else if g.t.Failed() {
		g.t.Logf("guest console (last lines; all of it was in %s):\n%s", g.conFile, g.consoleTail(150))
	}
}

func (g *Guest) consoleTail(n int) string {
	lines := strings.Split(strings.TrimRight(g.Console(), "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// Processes returns the ids of the processes whose command line mentions
// dir: a test's way to see that no qemu of its guest is left.
func Processes(dir string) ([]int, error) {
	ents, err := os.ReadDir("/proc")
	if err != nil {
		return nil, fmt.Errorf("list processes: %w", err)
	}
	var pids []int
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil || pid == os.Getpid() {
			continue
		}
		b, err := os.ReadFile(filepath.Join("/proc", e.Name(), "cmdline"))
		if err != nil {
			continue // gone meanwhile
		}
		if strings.Contains(string(b), dir) {
			pids = append(pids, pid)
		}
	}
	return pids, nil
}
