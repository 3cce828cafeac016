package e2e

import (
	"fmt"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/vtrace/vtrace/internal/vmtest"
)

// TestIntegrationHostNotReading: the agent streams but nobody on the host
// reads the data FIFOs (qemu still holds them, so the guest's ports fill up
// and the agent waits). The guest keeps running (heartbeats), the agent stays
// alive, and the ring buffer overwrites its oldest pages. Once a collector
// reads again, every event the kernel handed out arrives, and the overwritten
// ones are reported in the page flags.
//
// What the kernel guarantees: each overwritten event counts in the CPU's
// overrun; when the reader takes its next page, the events overwritten since
// its previous page are reported on that page (flag bit 31) with their count
// after the data when there is room (bit 30). So over a capture that ends
// with nothing unread and tracing off, the stored counts sum to the overrun
// if every flagged page had room, and never to more.
func TestIntegrationHostNotReading(t *testing.T) {
	logDuration(t)
	// Small buffers everywhere so a few seconds of markers overflow them.
	g := vmtest.Boot(t, vmtest.Options{CPUs: 2, Heartbeat: 1, BufferKB: 64, AgentArgs: "--pipe-size 64K"})
	out := filepath.Join(t.TempDir(), "capture")

	before := stats(t, g)
	vtrace(t, "host", "start", "--dir", g.Dir)
	// Until every CPU overwrote events: the pages the agent already took
	// wait in its pipe, the port's virtqueue (megabytes) and the FIFO.
	var mid []vmtest.CPUStats
	for round := 1; ; round++ {
		bigMarkers(t, g, 4000)
		mid = stats(t, g)
		overwritten := true
		for cpu, s := range mid {
			overwritten = overwritten && s.Overrun > before[cpu].Overrun
		}
		if overwritten {
			t.Logf("every CPU overwrote events after %d round(s) of markers: %+v", round, mid)
			break
		}
		if round == 8 {
			t.Fatalf("nothing overwritten on some CPU after %d rounds of markers with nobody reading: %+v", round, mid)
		}
	}
	// The guest is not stuck behind its full ports: its console goes on.
	for i := 0; i < 2; i++ {
		if _, err := g.WaitFor(`^VTRACE-HEARTBEAT \d+`, 30*time.Second); err != nil {
			t.Fatal(err)
		}
	}
	if out := command(t, g, "agent-status"); !strings.HasPrefix(out, "running") {
		t.Fatalf("agent-status after the host stopped reading: %q, want running", out)
	}
	command(t, g, "trace", "off")

	// The agent still records (`host start` above): read, then stop it.
	c := startCollect(t, g, out)
	vtrace(t, "host", "stop", "--dir", g.Dir)
	waitQuiet(t, rawFiles(out, g.CPUs), time.Second, 60*time.Second)
	c.stop(syscall.SIGTERM)
	after := stats(t, g)
	if out := command(t, g, "agent-status"); !strings.HasPrefix(out, "running") {
		t.Errorf("agent-status at the end: %q, want running", out)
	}

	got := scanCaptures(t, g.CPUs, out)
	for cpu, c := range got {
		a, b := after[cpu], before[cpu]
		read, overrun := a.ReadEvents-b.ReadEvents, a.Overrun-b.Overrun
		t.Logf("cpu %d: host %d events in %d pages, %d flagged (%d without count), %d counted missed; guest read %d, overrun %d, entries %d",
			cpu, c.Events, c.Pages, c.MissedPages, c.Unstored, c.MissedStored, read, overrun, a.Entries)
		if uint64(c.Events) != read {
			t.Errorf("cpu %d: the host parsed %d events, the guest kernel handed out %d", cpu, c.Events, read)
		}
		if a.Entries != 0 {
			t.Errorf("cpu %d: %d events left unread", cpu, a.Entries)
		}
		if c.MissedPages == 0 {
			t.Errorf("cpu %d: %d events overwritten but no page flagged", cpu, overrun)
		}
		if c.MissedStored > overrun {
			t.Errorf("cpu %d: pages count %d missed events, the guest overwrote %d", cpu, c.MissedStored, overrun)
		}
		if c.Unstored == 0 && c.MissedStored != overrun {
			t.Errorf("cpu %d: every flagged page has its count, they sum to %d, the guest overwrote %d", cpu, c.MissedStored, overrun)
		}
	}
}

// TestIntegrationRestarts: in one boot, several captures; the agent stopped
// by SIGTERM while it streams (it sends what it holds and exits), killed
// while idle, and started again; a collector killed with SIGKILL while it
// streams and another one started on the same FIFOs. Every capture parses,
// and together they hold every event the guest kernel handed out.
func TestIntegrationRestarts(t *testing.T) {
	logDuration(t)
	g := vmtest.Boot(t, vmtest.Options{CPUs: 2})
	work := t.TempDir()
	var outs []string
	capture := func() string {
		outs = append(outs, filepath.Join(work, "capture"+string(rune('a'+len(outs)))))
		return outs[len(outs)-1]
	}
	waitAgent := func(pattern string) {
		t.Helper()
		if _, err := g.WaitFor(pattern, 60*time.Second); err != nil {
			t.Fatal(err)
		}
	}
	before := stats(t, g)

	// Plain start and stop, twice.
	for i := 0; i < 2; i++ {
		c := startCollect(t, g, capture(), "--start")
		runWorkload(t, g, "spawn", 2, "")
		c.stop(syscall.SIGTERM)
	}

	// The agent stopped by SIGTERM in the middle of a capture.
	c := startCollect(t, g, capture(), "--start")
	id, err := g.StartWorkload("spawn", 3, "")
	if err != nil {
		t.Fatal(err)
	}
	time.Sleep(time.Second)
	command(t, g, "kill-agent", "TERM")
	waitAgent(`^VTRACE-AGENT-EXIT pid=\d+ rc=\d+`)
	if err := g.WaitWorkload(id, 60*time.Second); err != nil {
		t.Fatal(err)
	}
	// Its stop order waits in the channel for the next agent.
	c.stop(syscall.SIGTERM)

	// A new agent, killed while idle, and another one.
	command(t, g, "start-agent")
	waitAgent(`^VTRACE-AGENT-START pid=\d+`)
	command(t, g, "kill-agent", "KILL")
	waitAgent(`^VTRACE-AGENT-EXIT pid=\d+ rc=137`)
	command(t, g, "start-agent")
	waitAgent(`^VTRACE-AGENT-START pid=\d+`)

	// A collector killed while it streams; the next one reads on.
	c = startCollect(t, g, capture(), "--start")
	id, err = g.StartWorkload("spawn", 3, "")
	if err != nil {
		t.Fatal(err)
	}
	time.Sleep(1500 * time.Millisecond)
	c.stop(syscall.SIGKILL)
	// The agent goes on recording for the dead collector and refuses a new
	// start ("already recording; stop first"). A plain collector, which
	// sends no order, reads on at once (what waits in the FIFOs and what
	// comes), while `host stop` ends the recording; a collector
	// with --start would discard what waited as an earlier recording's.
	// The stop comes once the workload is over: what is recorded after it
	// waits in the ring buffer, unread, until the next start.
	c = startCollect(t, g, capture())
	if err := g.WaitWorkload(id, 60*time.Second); err != nil {
		t.Fatal(err)
	}
	vtrace(t, "host", "stop", "--dir", g.Dir)
	c.stop(syscall.SIGTERM)
	c = startCollect(t, g, capture(), "--start")
	runWorkload(t, g, "spawn", 2, "")
	command(t, g, "trace", "off")
	c.stop(syscall.SIGTERM)
	after := stats(t, g)

	for i, o := range outs {
		got := scanCaptures(t, g.CPUs, o)
		for cpu, c := range got {
			t.Logf("capture %d cpu %d: %d events in %d pages", i, cpu, c.Events, c.Pages)
		}
	}
	checkAccounted(t, scanCaptures(t, g.CPUs, outs...), before, after)
}

// checkAccounted is checkLossless with one allowance: while no collector
// reads (the one killed above), the agent waits for room and the kernel
// overwrites the oldest events, as with any host that stops reading. Such
// a loss must be counted in the stream: the pages flagged for missed
// events carry exactly the kernel's overrun. Everything else arrived.
func checkAccounted(t testing.TB, got []cpuCapture, before, after []vmtest.CPUStats) {
	t.Helper()
	for cpu, c := range got {
		read := after[cpu].ReadEvents - before[cpu].ReadEvents
		overrun := after[cpu].Overrun - before[cpu].Overrun
		t.Logf("cpu %d: host %d events in %d pages; guest read %d, entries %d, overrun %d; %d pages flagged (%d counted)",
			cpu, c.Events, c.Pages, read, after[cpu].Entries, overrun, c.MissedPages, c.MissedStored)
		if c.Events == 0 || uint64(c.Events) != read {
			t.Errorf("cpu %d: the host parsed %d events, the guest kernel handed out %d", cpu, c.Events, read)
		}
		if after[cpu].Entries != 0 {
			t.Errorf("cpu %d: %d events left unread in the guest's buffer", cpu, after[cpu].Entries)
		}
		if after[cpu].CommitOverrun != 0 || after[cpu].DroppedEvents != 0 {
			t.Errorf("cpu %d: commit_overrun %d, dropped %d", cpu, after[cpu].CommitOverrun, after[cpu].DroppedEvents)
		}
		if uint64(c.MissedStored) != overrun {
			t.Errorf("cpu %d: the kernel overwrote %d events, the stream counts %d in %d flagged pages", cpu, overrun, c.MissedStored, c.MissedPages)
		}
	}
}

// bigMarkers writes n trace_marker events of 1 KiB on every CPU of the
// guest, flat out, and returns when they are written.
func bigMarkers(t testing.TB, g *vmtest.Guest, n int) {
	t.Helper()
	script := fmt.Sprintf(`p=x; for k in 1 2 3 4 5 6 7 8 9 10; do p=$p$p; done; i=0; `+
		`while [ $i -lt %d ]; do echo $p >/sys/kernel/tracing/trace_marker; i=$((i + 1)); done`, n)
	line := fmt.Sprintf(`sh for c in $(seq 0 %d); do taskset -c $c sh -c '%s' & done; wait`, g.CPUs-1, script)
	if _, err := g.CommandWithin(5*time.Minute, line); err != nil {
		t.Fatal(err)
	}
}

// rawFiles names the cpuN.raw files of capture out.
func rawFiles(out string, cpus int) []string {
	var f []string
	for cpu := 0; cpu < cpus; cpu++ {
		f = append(f, filepath.Join(out, fmt.Sprintf("cpu%d.raw", cpu)))
	}
	return f
}
