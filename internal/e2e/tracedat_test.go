package e2e

import (
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"

	"github.com/vtrace/vtrace/internal/testutil"
	"github.com/vtrace/vtrace/internal/vmtest"
)

// knownScript is a process of a name nothing else in the guest has: a
// script's process takes the script's file name as its comm. It notes its
// pid, then forks /bin/true a hundred times, waiting for each (so it is
// switched out while it sleeps, and in again).
const knownScript = `sh printf '%s\n' '#!/bin/sh' 'echo $$ >>/tmp/vtknown.pids' ` +
	`'i=0; while [ $i -lt 100 ]; do /bin/true; i=$((i + 1)); done' >/tmp/vtknown && chmod +x /tmp/vtknown`

// TestIntegrationTraceDat: the trace.dat of a real guest's capture is what
// trace-cmd reads, event for event.
//
// First, lossless, on the top-level buffer (no settings): the spawn
// workload, then a script named vtknown on each CPU. trace-cmd shows, per
// CPU, as many events as the page reader counts in cpuN.raw, as the guest
// kernel handed out (read_events) and as the agent's final stats say; the
// same counts per event as `vtrace host stats`; no drop marker; sched_switch
// decoded into a consistent chain per CPU, with vtknown switched out and in
// under the pids the guest's scripts wrote down, named so in the cmdlines.
//
// Then, lossy, in the agent's own instance with a 32 KiB buffer: the
// collector is stopped (SIGSTOP) while 1 KiB markers overflow the buffer,
// and resumed. The overrun the guest's instance counted is what the agent's
// StopReply says, what collect's summary and WARNING lines print, and at
// least what the flagged pages count (exactly, when each had room for its
// count); trace-cmd shows a drop marker for every flagged page, with its count.
//
// On each guest kernel.
func TestIntegrationTraceDat(t *testing.T) { onKernels(t, traceDat) }

func traceDat(t *testing.T, kernel string) {
	logDuration(t)
	testutil.NeedProgram(t, "trace-cmd", "trace-cmd")
	// A small agent pipe, so that a stopped collector holds up the agent
	// (and the ring buffer overflows) sooner.
	g := vmtest.Boot(t, vmtest.Options{Kernel: kernel, CPUs: 2, AgentArgs: "--pipe-size 64K"})
	work := t.TempDir()

	t.Run("lossless", func(t *testing.T) {
		out := filepath.Join(work, "lossless")
		command(t, g, knownScript)
		before := stats(t, g)
		c := startCollect(t, g, out, "--start")
		runWorkload(t, g, "spawn", 2, "")
		command(t, g, "sh", "taskset -c 0 /tmp/vtknown & taskset -c 1 /tmp/vtknown & wait")
		command(t, g, "trace", "off")
		c.stop(syscall.SIGTERM)
		after := stats(t, g)
		command(t, g, "trace", "on")
		var pids []int
		for _, f := range strings.Fields(command(t, g, "sh", "cat /tmp/vtknown.pids")) {
			p, err := strconv.Atoi(f)
			if err != nil {
				t.Fatalf("the guest's vtknown pids: %q", f)
			}
			pids = append(pids, p)
		}
		if len(pids) != 2 {
			t.Fatalf("the guest's vtknown pids: %v, want 2", pids)
		}

		got := scanCaptures(t, g.CPUs, out)
		checkLossless(t, got, before, after)
		r := checkReport(t, out, got)
		agent := agentStats(t, out, g.CPUs)
		rows, lost := c.summary(g.CPUs)
		for cpu := range got {
			if agent[cpu].ReadEvents != after[cpu].ReadEvents || rows[cpu].Read != after[cpu].ReadEvents {
				t.Errorf("cpu %d: the agent's final read events %d (summary %d), the guest's %d",
					cpu, agent[cpu].ReadEvents, rows[cpu].Read, after[cpu].ReadEvents)
			}
			if rows[cpu].Events != got[cpu].Events {
				t.Errorf("cpu %d: collect's summary counts %d events, the page reader %d", cpu, rows[cpu].Events, got[cpu].Events)
			}
			if len(r.Switches[cpu]) == 0 {
				t.Errorf("cpu %d: no sched_switch in trace-cmd's report", cpu)
			}
		}
		if lost != 0 || strings.Contains(c.stdout.String(), "WARNING") {
			t.Errorf("a lossless capture, yet collect warns:\n%s", c.stdout.String())
		}
		checkConsecutive(t, r)
		checkKnown(t, r, out, pids)

		// The agent's final stats are in trace.dat (CPUSTAT).
		st := run(t, "trace-cmd", "report", "--stat", "-i", filepath.Join(out, "trace.dat"))
		for cpu := range got {
			if want := fmt.Sprintf("CPU: %d\nentries: %d\noverrun: %d\n", cpu, agent[cpu].Entries, agent[cpu].Overrun); !strings.Contains(st, want) ||
				!strings.Contains(st, fmt.Sprintf("read events: %d\n", agent[cpu].ReadEvents)) {
				t.Errorf("trace-cmd report --stat lacks cpu %d's stats (%q, read events %d):\n%s", cpu, want, agent[cpu].ReadEvents, st)
			}
		}
	})

	t.Run("lossy", func(t *testing.T) {
		out := filepath.Join(work, "lossy")
		c := startCollect(t, g, out, "--start", "--buffer-size", "32K", "--events", "sched:sched_switch", "--drain-timeout", "60s")
		inst := instances(t, g)
		if len(inst) != 1 {
			t.Fatalf("the guest's instances while recording with settings: %v, want the agent's", inst)
		}
		dir := "/sys/kernel/tracing/instances/" + inst[0]
		if err := c.cmd.Process.Signal(syscall.SIGSTOP); err != nil {
			t.Fatal(err)
		}
		var guest []vmtest.CPUStats
		for round := 1; ; round++ {
			bigMarkersTo(t, g, dir+"/trace_marker", 4000)
			guest = statsOf(t, g, inst[0])
			overrun := true
			for _, s := range guest {
				overrun = overrun && s.Overrun > 0
			}
			if overrun {
				t.Logf("every CPU overwrote events after %d round(s) of markers", round)
				break
			}
			if round == 8 {
				c.cmd.Process.Signal(syscall.SIGCONT)
				t.Fatalf("nothing overwritten on some CPU after %d rounds of markers, the collector stopped: %+v", round, guest)
			}
		}
		// Nothing is written any more, so the overrun is final.
		command(t, g, "sh", "echo 0 >"+dir+"/tracing_on")
		guest = statsOf(t, g, inst[0])
		if err := c.cmd.Process.Signal(syscall.SIGCONT); err != nil {
			t.Fatal(err)
		}
		c.stop(syscall.SIGTERM)
		if left := instances(t, g); len(left) != 0 {
			t.Errorf("the guest's instances after the capture: %v, want none", left)
		}

		got := scanCaptures(t, g.CPUs, out)
		agent := agentStats(t, out, g.CPUs)
		rows, lost := c.summary(g.CPUs)
		var total uint64
		for cpu, h := range got {
			a, s, row := agent[cpu], guest[cpu], rows[cpu]
			t.Logf("cpu %d: host %d events in %d pages, %d flagged (%d without count), %d counted; guest overrun %d; agent read %d, overrun %d; summary lost %d",
				cpu, h.Events, h.Pages, h.MissedPages, h.Unstored, h.MissedStored, s.Overrun, a.ReadEvents, a.Overrun, row.Lost)
			guestLost := s.Overrun + s.CommitOverrun + s.DroppedEvents
			total += guestLost
			if a.Overrun != s.Overrun || a.CommitOverrun != s.CommitOverrun || a.DroppedEvents != s.DroppedEvents {
				t.Errorf("cpu %d: the agent's final stats say overrun %d, commit overrun %d, dropped %d; the guest's instance %d, %d, %d",
					cpu, a.Overrun, a.CommitOverrun, a.DroppedEvents, s.Overrun, s.CommitOverrun, s.DroppedEvents)
			}
			if row.Lost != guestLost || row.Overrun != s.Overrun+s.CommitOverrun || row.Dropped != s.DroppedEvents {
				t.Errorf("cpu %d: collect's WARNING says %d lost (summary: overrun %d, dropped %d), the guest lost %d",
					cpu, row.Lost, row.Overrun, row.Dropped, guestLost)
			}
			if uint64(h.Events) != a.ReadEvents || row.Read != a.ReadEvents || a.Entries != 0 {
				t.Errorf("cpu %d: the host parsed %d events, the agent read %d (summary %d), %d left in the buffer",
					cpu, h.Events, a.ReadEvents, row.Read, a.Entries)
			}
			if h.MissedPages == 0 {
				t.Errorf("cpu %d: %d events overwritten but no page flagged", cpu, s.Overrun)
			}
			if h.MissedStored > s.Overrun {
				t.Errorf("cpu %d: pages count %d missed events, the guest overwrote %d", cpu, h.MissedStored, s.Overrun)
			}
			if h.Unstored == 0 && h.MissedStored != s.Overrun {
				t.Errorf("cpu %d: every flagged page has its count, they sum to %d, the guest overwrote %d", cpu, h.MissedStored, s.Overrun)
			}
		}
		if lost != total {
			t.Errorf("collect's WARNING says %d events lost in all, the guest lost %d:\n%s", lost, total, c.stdout.String())
		}
		r := checkReport(t, out, got)
		for cpu := range got {
			if r.DropLines[cpu] == 0 {
				t.Errorf("cpu %d: no EVENTS DROPPED in trace-cmd's report", cpu)
			}
		}
		for name := range r.PerEvent {
			if name != "sched_switch" && name != "print" {
				t.Errorf("trace-cmd report shows %s events; recorded were sched_switch and markers", name)
			}
		}
	})
}

// checkKnown finds the vtknown scripts (pids, as the guest wrote them
// down) in trace-cmd's decoded events: each forked its children
// (sched_process_fork), was switched out and in (sched_switch) and exec'd
// /tmp/vtknown (sched_process_exec); trace-cmd names it from the saved
// cmdlines, which hold it. A vtknown in a sched_switch is one of them or a
// child they forked that has not exec'd /bin/true yet (it has its
// parent's name until then).
func checkKnown(t testing.TB, r traceReport, out string, pids []int) {
	t.Helper()
	known := map[int]bool{}
	for _, p := range pids {
		known[p] = true
		for _, c := range r.Children[p] {
			known[c] = true
		}
	}
	switchedOut, switchedIn, charged := map[int]int{}, map[int]int{}, map[int]int{}
	for cpu, sw := range r.Switches {
		for _, s := range sw {
			if s.PrevComm == "vtknown" {
				if !known[s.PrevPid] {
					t.Errorf("cpu %d: sched_switch takes off a vtknown of pid %d; the guest's were %v, their children %v", cpu, s.PrevPid, pids, r.Children)
				}
				switchedOut[s.PrevPid]++
			}
			if s.NextComm == "vtknown" {
				if !known[s.NextPid] {
					t.Errorf("cpu %d: sched_switch puts on a vtknown of pid %d; the guest's were %v, their children %v", cpu, s.NextPid, pids, r.Children)
				}
				switchedIn[s.NextPid]++
			}
			if s.Comm == "vtknown" {
				charged[s.Pid]++
			}
		}
	}
	execs := map[int]bool{}
	for _, e := range r.Execs {
		if e.Filename == "/tmp/vtknown" {
			execs[e.Pid] = true
		}
	}
	cmdlines, err := os.ReadFile(filepath.Join(out, "meta", "saved_cmdlines"))
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range pids {
		t.Logf("vtknown pid %d: %d children; switched out %d times, in %d times; trace-cmd names it in %d",
			p, len(r.Children[p]), switchedOut[p], switchedIn[p], charged[p])
		if len(r.Children[p]) != 100 {
			t.Errorf("vtknown pid %d: forked %d children, it forks 100", p, len(r.Children[p]))
		}
		if switchedOut[p] == 0 || switchedIn[p] == 0 {
			t.Errorf("vtknown pid %d: switched out %d times, in %d times; it waited for 100 children", p, switchedOut[p], switchedIn[p])
		}
		if !execs[p] {
			t.Errorf("vtknown pid %d: no sched_process_exec of /tmp/vtknown", p)
		}
		if charged[p] == 0 {
			t.Errorf("vtknown pid %d: trace-cmd never names it vtknown-%d (the cmdlines)", p, p)
		}
		if !strings.Contains("\n"+string(cmdlines), fmt.Sprintf("\n%d vtknown\n", p)) {
			t.Errorf("vtknown pid %d: not in the guest's saved_cmdlines", p)
		}
	}
}
