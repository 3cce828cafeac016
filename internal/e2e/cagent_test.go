package e2e

import (
	"fmt"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/vtrace/vtrace/internal/testutil"
	"github.com/vtrace/vtrace/internal/vmtest"
)

// TestIntegrationCAgent drives the kernel's own virtio-trace agent
// (tools/virtio/virtio-trace, built from Debian's linux-source by
// scripts/build-c-agent.sh and started by the guest's init instead of ours)
// with vtrace's host commands: settings are refused with a clear error;
// collect --start falls back to the line protocol's orders and captures
// whole pages; start and stop work next to plain cat readers.
//
// It also pins down what the C agent loses that ours does not. On this
// guest's kernel it ends (rc 1, "Splice_read in rw-thread(N)") as soon as
// one CPU's ring buffer holds no whole page: its pipe is non-blocking, so
// the splice from trace_pipe_raw fails with EAGAIN, which it takes for a
// fatal error. A capture thus holds the whole pages there were at the start
// order (and whatever it read before catching up; sometimes nothing of a
// CPU whose thread had not read yet when another one ended the process), the
// stop order finds no agent, and the rest stays in the guest, where
// TestIntegrationLossless finds nothing left by ours.
func TestIntegrationCAgent(t *testing.T) {
	logDuration(t)
	g := vmtest.Boot(t, vmtest.Options{CPUs: 2, Agent: vmtest.AgentC})
	if out := command(t, g, "agent-status"); !strings.HasPrefix(out, "running") {
		t.Fatalf("the C agent is not running: %q", out)
	}

	// (3) Settings need an agent that speaks the protocol. The C agent
	// takes the Hello for an invalid order and keeps waiting.
	cmd := exec.Command(testutil.BuildVtrace(t), "host", "start", "--dir", g.Dir,
		"--handshake-timeout", "1s", "--events", "sched")
	if b, err := cmd.CombinedOutput(); err == nil || !strings.Contains(string(b), "cannot apply settings") {
		t.Errorf("start --events against the C agent: %v\n%s", err, b)
	}
	if out := command(t, g, "agent-status"); !strings.HasPrefix(out, "running") {
		t.Fatalf("the C agent ended after a Hello: %q", out)
	}

	before := stats(t, g)
	var captures []string

	// (1) collect --start: no answer to the handshake, bare orders, raw
	// pages. The workload leaves whole pages on every CPU for the start.
	runWorkload(t, g, "spawn", 2, "")
	from := len(g.Console())
	out := filepath.Join(t.TempDir(), "collect")
	text := vtrace(t, "host", "collect", "--dir", g.Dir, "-o", out, "--quiet",
		"--start", "--duration", "3s", "--handshake-timeout", "1s")
	t.Logf("vtrace host collect against the C agent:\n%s", text)
	if !strings.Contains(text, "no vtrace agent answered") || !strings.Contains(text, "raw pages only") {
		t.Errorf("collect printed no notice that the agent did not answer")
	}
	captures = append(captures, out)
	checkCAgentCapture(t, g, "collect", out)
	cAgentExited(t, g, from)

	// (2) The kernel's virtio-trace README's workflow: cat per CPU, start, stop.
	command(t, g, "start-agent")
	runWorkload(t, g, "spawn", 2, "")
	work := filepath.Join(t.TempDir(), "cat")
	files := catReaders(t, g, work)
	from = len(g.Console())
	if text := vtrace(t, "host", "start", "--dir", g.Dir, "--handshake-timeout", "1s"); !strings.Contains(text, "sent the start order") {
		t.Errorf("vtrace host start: %q", text)
	}
	cAgentExited(t, g, from)
	if text := vtrace(t, "host", "stop", "--dir", g.Dir, "--handshake-timeout", "1s"); !strings.Contains(text, "sent the stop order") {
		t.Errorf("vtrace host stop: %q", text)
	}
	waitQuiet(t, files, 2*time.Second, time.Minute)
	captures = append(captures, work)
	checkCAgentCapture(t, g, "cat", work)

	// (4) The C agent sent only part of what it read (its last batch may
	// die with it), and left the rest in the guest.
	after := stats(t, g)
	for cpu, c := range scanCaptures(t, g.CPUs, captures...) {
		read := after[cpu].ReadEvents - before[cpu].ReadEvents
		t.Logf("cpu %d: host %d events in %d pages; the guest kernel handed out %d, holds %d (%d bytes), overrun %d",
			cpu, c.Events, c.Pages, read, after[cpu].Entries, after[cpu].Bytes, after[cpu].Overrun)
		if uint64(c.Events) > read {
			t.Errorf("cpu %d: the host parsed %d events, more than the %d the guest kernel handed out", cpu, c.Events, read)
		}
		if after[cpu].Entries == 0 {
			t.Errorf("cpu %d: no events left in the guest after the C agent's capture", cpu)
		}
	}
}

// checkCAgentCapture checks that dir holds whole pages that parse, and logs
// what each CPU's file holds.
func checkCAgentCapture(t testing.TB, g *vmtest.Guest, what, dir string) {
	t.Helper()
	total := int64(0)
	for cpu, c := range scanCaptures(t, g.CPUs, dir) {
		t.Logf("%s: cpu %d: %d pages, %d events", what, cpu, c.Pages, c.Events)
		total += c.Events
	}
	if total == 0 {
		t.Errorf("%s captured no events from the C agent", what)
	}
}

// cAgentExited waits for the C agent's end after console offset from, and
// checks that it ended as observed: rc 1 after its splice from (or into) a
// CPU's stream failed.
func cAgentExited(t testing.TB, g *vmtest.Guest, from int) {
	t.Helper()
	m, err := g.WaitFor(`^VTRACE-AGENT-EXIT pid=\d+ rc=(\d+)$`, time.Minute)
	if err != nil {
		t.Fatalf("the C agent kept running after it caught up with the ring buffer: %v", err)
	}
	why := regexp.MustCompile(`(?m)^Splice_(read|write) in rw-thread\(\d+\)$`).FindString(g.Console()[from:])
	t.Logf("the C agent ended with rc %s: %q", m[1], why)
	if m[1] != "1" || why == "" {
		t.Errorf("the C agent ended with rc %s and %q, want rc 1 after a failed splice", m[1], why)
	}
}

// catReaders starts `cat trace-path-cpuN.out > dir/cpuN.raw` per CPU, as
// the kernel's virtio-trace README reads the C agent, and returns the files; the cats are
// killed at cleanup.
func catReaders(t testing.TB, g *vmtest.Guest, dir string) []string {
	t.Helper()
	files := make([]string, g.CPUs)
	for cpu := range files {
		files[cpu] = filepath.Join(dir, fmt.Sprintf("cpu%d.raw", cpu))
		cat := exec.Command("sh", "-c", `mkdir -p "$1" && exec cat "$2" >"$3"`, "sh",
			dir, g.Path(fmt.Sprintf("trace-path-cpu%d", cpu))+".out", files[cpu])
		cat.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
		if err := cat.Start(); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() {
			cat.Process.Kill()
			cat.Wait()
		})
	}
	return files
}
