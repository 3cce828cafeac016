package e2e

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/vtrace/vtrace/guest"
	"github.com/vtrace/vtrace/internal/testutil"
	"github.com/vtrace/vtrace/internal/vmtest"
	"github.com/vtrace/vtrace/proto/ringbuf"
	"github.com/vtrace/vtrace/proto/wire"
)

// collector is a `vtrace host collect` running in the background.
type collector struct {
	t      testing.TB
	cmd    *exec.Cmd
	out    string
	stdout bytes.Buffer
	stderr bytes.Buffer
	done   chan struct{}
	err    error
}

// startCollect runs `vtrace host collect --dir g.Dir -o out --quiet
// args...`; with --start it returns once the agent records.
func startCollect(t testing.TB, g *vmtest.Guest, out string, args ...string) *collector {
	t.Helper()
	c := runCollector(t, out, append([]string{"--dir", g.Dir}, args...)...)
	if started := slices.Contains(args, "--start"); started {
		c.waitRecording(g)
	}
	return c
}

// runCollector runs `vtrace host collect -o out --quiet args...` in the
// background.
func runCollector(t testing.TB, out string, args ...string) *collector {
	t.Helper()
	c := &collector{t: t, out: out, done: make(chan struct{})}
	c.cmd = exec.Command(testutil.BuildVtrace(t),
		append([]string{"host", "collect", "-o", out, "--quiet"}, args...)...)
	c.cmd.Stdout, c.cmd.Stderr = &c.stdout, &c.stderr
	c.cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := c.cmd.Start(); err != nil {
		t.Fatalf("start vtrace host collect: %v", err)
	}
	go func() {
		c.err = c.cmd.Wait()
		close(c.done)
	}()
	t.Cleanup(func() {
		select {
		case <-c.done:
		default:
			c.cmd.Process.Kill()
			<-c.done
		}
	})
	return c
}

// waitRecording waits until the collector has the agent's metadata
// (OUT/meta, saved before it sends the start order) and the agent logged
// its start on the console (60 s at most each), so that a signal sent later
// stops a recording: one that comes during the handshake fails collect.
func (c *collector) waitRecording(g *vmtest.Guest) { c.t.Helper(); c.waitRecordingIn(g, c.out) }

// waitRecordingIn is waitRecording for the guest whose capture goes to
// out (OUT/NAME in a capture of several guests).
func (c *collector) waitRecordingIn(g *vmtest.Guest, out string) {
	c.t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for time.Now().Before(deadline) {
		if _, err := os.Stat(filepath.Join(out, "meta", "events", "header_page")); err == nil {
			if _, err := g.WaitFor(`level=DEBUG msg=start `, 60*time.Second); err != nil {
				c.t.Fatal(err)
			}
			return
		}
		select {
		case <-c.done:
			c.t.Fatalf("vtrace host collect ended before recording: %v\n%s%s", c.err, c.stdout.String(), c.stderr.String())
		case <-time.After(50 * time.Millisecond):
		}
	}
	c.t.Logf("vtrace host collect saved no metadata within 60s; going on")
}

// stop sends sig and waits (60 s at most) for the collector to exit. With
// SIGTERM it must exit cleanly; its summary is logged.
func (c *collector) stop(sig syscall.Signal) {
	c.t.Helper()
	select {
	case <-c.done:
		c.t.Fatalf("vtrace host collect ended before it was stopped: %v\n%s%s", c.err, c.stdout.String(), c.stderr.String())
	default:
	}
	if err := c.cmd.Process.Signal(sig); err != nil {
		c.t.Fatalf("signal vtrace host collect: %v", err)
	}
	c.wait(60 * time.Second)
	if sig == syscall.SIGKILL {
		return
	}
	if c.err != nil {
		c.t.Fatalf("vtrace host collect after %v: %v\n%s%s", sig, c.err, c.stdout.String(), c.stderr.String())
	}
	c.t.Logf("vtrace host collect -o %s:\n%s%s", filepath.Base(c.out), c.stdout.String(), c.stderr.String())
}

// wait waits for the collector to exit on its own (e.g. --duration).
func (c *collector) wait(bound time.Duration) {
	c.t.Helper()
	select {
	case <-c.done:
	case <-time.After(bound):
		c.cmd.Process.Kill()
		<-c.done
		c.t.Fatalf("vtrace host collect did not exit within %s; killed it\n%s%s", bound, c.stdout.String(), c.stderr.String())
	}
}

// vtrace runs a vtrace command to its end and returns its output.
func vtrace(t testing.TB, args ...string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, testutil.BuildVtrace(t), args...).CombinedOutput()
	if err != nil {
		t.Fatalf("vtrace %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return string(out)
}

// cpuCapture is what one CPU's raw file holds.
type cpuCapture struct {
	Bytes        int64
	Pages        int64
	Events       int64
	MissedPages  int64  // pages flagged with events missed before them
	Unstored     int64  // of those, pages without room for the count
	MissedStored uint64 // the sum of the stored counts
	Partial      int    // bytes of a trailing partial page
}

func (c *cpuCapture) add(o cpuCapture) {
	c.Bytes += o.Bytes
	c.Pages += o.Pages
	c.Events += o.Events
	c.MissedPages += o.MissedPages
	c.Unstored += o.Unstored
	c.MissedStored += o.MissedStored
	c.Partial += o.Partial
}

// scanRaw reads path page by page with proto/ringbuf (the guest's layout:
// x86-64, 4 KiB pages). A missing file is an empty capture.
func scanRaw(t testing.TB, path string) cpuCapture {
	t.Helper()
	data, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return cpuCapture{}
	}
	if err != nil {
		t.Fatal(err)
	}
	l := ringbuf.DefaultLayout()
	c := cpuCapture{Bytes: int64(len(data)), Partial: len(data) % l.PageSize}
	for off := 0; off+l.PageSize <= len(data); off += l.PageSize {
		ps, err := ringbuf.ParsePage(l, data[off:off+l.PageSize], nil)
		if err != nil {
			t.Fatalf("%s: page %d (offset %d): %v", path, c.Pages, off, err)
		}
		c.Pages++
		c.Events += int64(ps.Events)
		if ps.Missed {
			c.MissedPages++
			if ps.MissedCount == 0 {
				c.Unstored++
			}
			c.MissedStored += ps.MissedCount
		}
	}
	return c
}

// scanCaptures sums, per CPU, the raw files cpuN.raw of every capture
// directory in dirs.
func scanCaptures(t testing.TB, cpus int, dirs ...string) []cpuCapture {
	t.Helper()
	all := make([]cpuCapture, cpus)
	for _, d := range dirs {
		for cpu := range all {
			c := scanRaw(t, filepath.Join(d, fmt.Sprintf("cpu%d.raw", cpu)))
			if c.Partial != 0 {
				t.Errorf("%s/cpu%d.raw ends with %d bytes of a partial page", d, cpu, c.Partial)
			}
			all[cpu].add(c)
		}
	}
	return all
}

// checkLossless compares, per CPU, the events that reached the host with
// the guest kernel's counts between before and after (tracing was off by
// then): every event the kernel handed to a reader arrived, none is left in
// the buffer, none was overwritten and no page says events were missed.
func checkLossless(t testing.TB, got []cpuCapture, before, after []vmtest.CPUStats) {
	t.Helper()
	for cpu, c := range got {
		read := after[cpu].ReadEvents - before[cpu].ReadEvents
		t.Logf("cpu %d: host %d events in %d pages; guest read %d, entries %d, overrun %d",
			cpu, c.Events, c.Pages, read, after[cpu].Entries, after[cpu].Overrun)
		if c.Events == 0 {
			t.Errorf("cpu %d: no events reached the host", cpu)
		}
		if uint64(c.Events) != read {
			t.Errorf("cpu %d: the host parsed %d events, the guest kernel handed out %d (read_events %d -> %d)",
				cpu, c.Events, read, before[cpu].ReadEvents, after[cpu].ReadEvents)
		}
		if after[cpu].Entries != 0 {
			t.Errorf("cpu %d: %d events left unread in the guest's buffer", cpu, after[cpu].Entries)
		}
		if after[cpu].Overrun != 0 || after[cpu].CommitOverrun != 0 || after[cpu].DroppedEvents != 0 {
			t.Errorf("cpu %d: the guest lost events: overrun %d, commit_overrun %d, dropped %d",
				cpu, after[cpu].Overrun, after[cpu].CommitOverrun, after[cpu].DroppedEvents)
		}
		if c.MissedPages != 0 {
			t.Errorf("cpu %d: %d pages flagged with missed events (%d counted)", cpu, c.MissedPages, c.MissedStored)
		}
	}
}

// stats returns the guest's per-CPU stats or fails the test.
func stats(t testing.TB, g *vmtest.Guest) []vmtest.CPUStats {
	t.Helper()
	s, err := g.Stats()
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// command runs a test-port command or fails the test.
func command(t testing.TB, g *vmtest.Guest, args ...string) string {
	t.Helper()
	out, err := g.Command(args...)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// runWorkload runs a guest workload on every CPU to its end.
func runWorkload(t testing.TB, g *vmtest.Guest, name string, seconds int, arg string) {
	t.Helper()
	id, err := g.StartWorkload(name, seconds, arg)
	if err != nil {
		t.Fatal(err)
	}
	if err := g.WaitWorkload(id, time.Duration(seconds)*time.Second+60*time.Second); err != nil {
		t.Fatal(err)
	}
}

// drained waits until the guest's buffers hold no unread event on any CPU
// (the agent has read everything), polling its stats; it fails after bound.
func drained(t testing.TB, g *vmtest.Guest, bound time.Duration) []vmtest.CPUStats {
	t.Helper()
	deadline := time.Now().Add(bound)
	for {
		s := stats(t, g)
		left := uint64(0)
		for _, c := range s {
			left += c.Entries
		}
		if left == 0 {
			return s
		}
		if time.Now().After(deadline) {
			t.Fatalf("the guest's buffers still hold %d unread events after %s: %+v", left, bound, s)
		}
		time.Sleep(500 * time.Millisecond)
	}
}

// onKernels runs test once per guest kernel (vmtest.Kernels, oldest
// first), each as a subtest named after the kernel series ("6.1", "6.12"),
// one after the other: the guests share the machine's cores.
func onKernels(t *testing.T, test func(t *testing.T, kernel string)) {
	for _, k := range vmtest.Kernels {
		t.Run(k, func(t *testing.T) { test(t, k) })
	}
}

// logDuration logs how long the test took: the VM tests share CI's time,
// and each bounds its own waits instead of asserting on time.
func logDuration(t *testing.T) {
	begin := time.Now()
	t.Cleanup(func() { t.Logf("the test took %s", time.Since(begin).Round(time.Second)) })
}

// traceReport is what `trace-cmd report -N` printed of a trace.dat.
type traceReport struct {
	PerCPU      map[int]int64         // events per CPU
	PerEvent    map[string]int64      // events per name, as trace-cmd names them (no system)
	PerCPUEvent map[string]int64      // "CPU/name"
	DropLines   map[int]int           // "CPU:N [... EVENTS DROPPED]" lines per CPU
	DropCounts  map[int]uint64        // the sum of their counts
	Switches    map[int][]schedSwitch // per CPU, in order
	Execs       []processExec         // sched_process_exec events
	Children    map[int][]int         // sched_process_fork: the children of each pid
	Stamps      []string              // the first few timestamps, as printed
	Other       []string              // lines it printed that are none of the above
}

// schedSwitch is one sched_switch as trace-cmd decoded it: the task it
// charged the event to (its line's COMM-PID, the name from the cmdlines)
// and the event's own fields.
type schedSwitch struct {
	Comm               string
	Pid                int
	PrevComm, NextComm string
	PrevPid, NextPid   int
}

type processExec struct {
	Filename string
	Pid      int
}

var (
	reportLine   = regexp.MustCompile(`^\s*(.+)-(\d+)\s+\[(\d+)\]\s*(\S+):\s+([\w-]+):\s*(.*)$`) // a counter clock of 12 digits and more leaves no space after the CPU
	reportDrop   = regexp.MustCompile(`^CPU:(\d+) \[(?:(\d+) )?EVENTS DROPPED\]$`)
	reportSwitch = regexp.MustCompile(`^prev_comm=(.*) prev_pid=(\d+) prev_prio=-?\d+ prev_state=\S+ ==> next_comm=(.*) next_pid=(\d+) next_prio=-?\d+$`)
	reportExec   = regexp.MustCompile(`^filename=(\S+) pid=(\d+) old_pid=\d+$`)
	reportFork   = regexp.MustCompile(`^comm=.* pid=(\d+) child_comm=.* child_pid=(\d+)$`)
	reportHeader = regexp.MustCompile(`^(cpus=\d+|CPU \d+ is empty)$`)
)

// traceCmdReport runs `trace-cmd report -N -i file` (decoded fields,
// without plugins) and counts what it printed. A line it cannot place, or
// a sched_switch whose fields do not parse, fails the test.
func traceCmdReport(t testing.TB, file string) traceReport {
	t.Helper()
	testutil.NeedProgram(t, "trace-cmd", "trace-cmd")
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, "trace-cmd", "report", "-N", "-i", file)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("trace-cmd report -i %s: %v\n%s", file, err, stderr.String())
	}
	if stderr.Len() > 0 {
		t.Logf("trace-cmd report -i %s said on stderr:\n%s", file, stderr.String())
	}
	r := traceReport{PerCPU: map[int]int64{}, PerEvent: map[string]int64{}, PerCPUEvent: map[string]int64{},
		DropLines: map[int]int{}, DropCounts: map[int]uint64{}, Switches: map[int][]schedSwitch{}, Children: map[int][]int{}}
	for _, line := range strings.Split(strings.TrimRight(string(out), "\n"), "\n") {
		if m := reportDrop.FindStringSubmatch(line); m != nil {
			cpu, _ := strconv.Atoi(m[1])
			r.DropLines[cpu]++
			if m[2] != "" {
				n, _ := strconv.ParseUint(m[2], 10, 64)
				r.DropCounts[cpu] += n
			}
			continue
		}
		m := reportLine.FindStringSubmatch(line)
		if m == nil {
			if !reportHeader.MatchString(line) {
				r.Other = append(r.Other, line)
			}
			continue
		}
		pid, _ := strconv.Atoi(m[2])
		cpu, _ := strconv.Atoi(m[3])
		name, fields := m[5], m[6]
		r.PerCPU[cpu]++
		r.PerEvent[name]++
		r.PerCPUEvent[fmt.Sprintf("%d/%s", cpu, name)]++
		if len(r.Stamps) < 5 {
			r.Stamps = append(r.Stamps, m[4])
		}
		switch name {
		case "sched_switch":
			f := reportSwitch.FindStringSubmatch(fields)
			if f == nil {
				t.Fatalf("trace-cmd report: sched_switch fields do not parse: %q", line)
			}
			s := schedSwitch{Comm: strings.TrimSpace(m[1]), Pid: pid, PrevComm: f[1], NextComm: f[3]}
			s.PrevPid, _ = strconv.Atoi(f[2])
			s.NextPid, _ = strconv.Atoi(f[4])
			r.Switches[cpu] = append(r.Switches[cpu], s)
		case "sched_process_exec":
			if f := reportExec.FindStringSubmatch(fields); f != nil {
				p, _ := strconv.Atoi(f[2])
				r.Execs = append(r.Execs, processExec{Filename: f[1], Pid: p})
			}
		case "sched_process_fork":
			if f := reportFork.FindStringSubmatch(fields); f != nil {
				p, _ := strconv.Atoi(f[1])
				c, _ := strconv.Atoi(f[2])
				r.Children[p] = append(r.Children[p], c)
			}
		}
	}
	if len(r.Other) > 0 {
		t.Errorf("trace-cmd report -i %s printed %d lines that are neither events nor drop markers, the first: %q",
			file, len(r.Other), r.Other[0])
	}
	return r
}

// checkReport compares trace-cmd's view of OUT/trace.dat with the page
// reader's counts of OUT/cpuN.raw (got) and with `vtrace host stats OUT`:
// the same events per CPU, the same counts per event name and CPU, and a
// drop marker for every page flagged with missed events, with the counts
// the pages hold.
func checkReport(t testing.TB, out string, got []cpuCapture) traceReport {
	t.Helper()
	r := traceCmdReport(t, filepath.Join(out, "trace.dat"))
	for cpu, c := range got {
		if r.PerCPU[cpu] != c.Events {
			t.Errorf("cpu %d: trace-cmd report shows %d events, the page reader counts %d in cpu%d.raw", cpu, r.PerCPU[cpu], c.Events, cpu)
		}
		if int64(r.DropLines[cpu]) != c.MissedPages || r.DropCounts[cpu] != c.MissedStored {
			t.Errorf("cpu %d: trace-cmd shows %d drop markers counting %d events; %d pages are flagged, counting %d",
				cpu, r.DropLines[cpu], r.DropCounts[cpu], c.MissedPages, c.MissedStored)
		}
	}
	hs := hostStats(t, out)
	if len(hs) == 0 {
		t.Errorf("vtrace host stats %s: no event counts", out)
	}
	for key, n := range hs {
		if r.PerCPUEvent[key] != n {
			t.Errorf("event %s: vtrace host stats counts %d, trace-cmd report shows %d", key, n, r.PerCPUEvent[key])
		}
	}
	for key, n := range r.PerCPUEvent {
		if _, ok := hs[key]; !ok {
			t.Errorf("event %s: trace-cmd report shows %d, vtrace host stats none", key, n)
		}
	}
	return r
}

// hostStats runs `vtrace host stats OUT` and returns its per-CPU event
// counts, keyed "CPU/name" with the name without its system (as trace-cmd
// prints it), and "all/name" for the totals.
func hostStats(t testing.TB, out string) map[string]int64 {
	t.Helper()
	text := vtrace(t, "host", "stats", out)
	counts := map[string]int64{}
	in := false
	for _, line := range strings.Split(text, "\n") {
		f := strings.Fields(line)
		if len(f) > 0 && f[0] == "EVENT" {
			in = true
			continue
		}
		if !in || len(f) != 5 {
			continue
		}
		_, name, ok := strings.Cut(f[0], ":")
		n, err := strconv.ParseInt(f[2], 10, 64)
		if !ok || err != nil {
			t.Fatalf("vtrace host stats %s: line %q: want SYSTEM:EVENT CPU COUNT FIRST LAST", out, line)
		}
		if f[1] == "all" {
			continue
		}
		counts[f[1]+"/"+name] += n
	}
	return counts
}

// collectSummary is one CPU's row of collect's summary: what the host
// read and the agent's final counters (its StopReply).
type collectSummary struct {
	Events, MissedPages, MissedEvents     int64
	Entries, Read, Overrun, Dropped, Lost uint64 // Lost: from the CPU's WARNING line
}

var (
	warnCPU   = regexp.MustCompile(`(?m)^WARNING: (\d+) events lost on CPU (\d+) \(overrun (\d+), commit overrun (\d+), dropped (\d+)\)`)
	warnTotal = regexp.MustCompile(`(?m)^WARNING: (\d+) events lost in all: the capture is incomplete$`)
)

// summary parses collect's printed summary (with the agent's columns) and
// its WARNING lines; it returns the rows per CPU and the total lost.
func (c *collector) summary(cpus int) ([]collectSummary, uint64) {
	c.t.Helper()
	text := c.stdout.String()
	rows := make([]collectSummary, cpus)
	seen := 0
	for _, line := range strings.Split(text, "\n") {
		f := strings.Fields(line)
		if len(f) != 12 || f[1] != "cpu"+f[0]+".raw" {
			continue
		}
		cpu, _ := strconv.Atoi(f[0])
		if cpu >= cpus {
			c.t.Fatalf("collect's summary has a row for cpu %d of %d: %q", cpu, cpus, line)
		}
		var n [10]uint64
		for i := range n {
			v, err := strconv.ParseUint(f[i+2], 10, 64)
			if err != nil {
				c.t.Fatalf("collect's summary: row %q: %v", line, err)
			}
			n[i] = v
		}
		// bytes pages events missed-pages missed-events cut entries read overrun dropped
		rows[cpu] = collectSummary{Events: int64(n[2]), MissedPages: int64(n[3]), MissedEvents: int64(n[4]),
			Entries: n[6], Read: n[7], Overrun: n[8], Dropped: n[9]}
		seen++
	}
	if seen != cpus {
		c.t.Fatalf("collect's summary has %d CPU rows with the agent's counters, want %d:\n%s", seen, cpus, text)
	}
	for _, m := range warnCPU.FindAllStringSubmatch(text, -1) {
		cpu, _ := strconv.Atoi(m[2])
		n, _ := strconv.ParseUint(m[1], 10, 64)
		if cpu < cpus {
			rows[cpu].Lost = n
		}
	}
	var total uint64
	if m := warnTotal.FindStringSubmatch(text); m != nil {
		total, _ = strconv.ParseUint(m[1], 10, 64)
	}
	return rows, total
}

// agentStats reads the agent's final per-CPU stats that collect stored in
// OUT/meta/cpustats.
func agentStats(t testing.TB, out string, cpus int) []wire.CPUStats {
	t.Helper()
	var all []wire.CPUStats
	for cpu := 0; cpu < cpus; cpu++ {
		b, err := os.ReadFile(filepath.Join(out, "meta", "cpustats", fmt.Sprintf("cpu%d", cpu)))
		if err != nil {
			t.Fatal(err)
		}
		s, err := guest.ParseCPUStats(cpu, string(b))
		if err != nil {
			t.Fatal(err)
		}
		all = append(all, s)
	}
	return all
}

// instances lists the guest's ftrace instances.
func instances(t testing.TB, g *vmtest.Guest) []string {
	t.Helper()
	return strings.Fields(command(t, g, "sh", "ls /sys/kernel/tracing/instances"))
}

// checkConsecutive checks, per CPU, that each sched_switch takes off the
// CPU the task the previous one put on it, and that trace-cmd charges it
// to that task: true of every complete trace.
func checkConsecutive(t testing.TB, r traceReport) {
	t.Helper()
	for cpu, sw := range r.Switches {
		bad := 0
		for i, s := range sw {
			if s.Pid != s.PrevPid && bad < 3 {
				bad++
				t.Errorf("cpu %d: sched_switch %d is charged to pid %d (%s), its prev_pid is %d", cpu, i, s.Pid, s.Comm, s.PrevPid)
			}
			if i > 0 && sw[i-1].NextPid != s.PrevPid && bad < 3 {
				bad++
				t.Errorf("cpu %d: sched_switch %d puts pid %d (%s) on the CPU, the next one takes pid %d (%s) off",
					cpu, i-1, sw[i-1].NextPid, sw[i-1].NextComm, s.PrevPid, s.PrevComm)
			}
		}
	}
}

// statsOf returns the per-CPU stats of the guest's ftrace instance name or
// fails the test.
func statsOf(t testing.TB, g *vmtest.Guest, name string) []vmtest.CPUStats {
	t.Helper()
	s, err := g.StatsOf(name)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// bigMarkersTo is bigMarkers into the trace_marker file marker (e.g. an
// instance's).
func bigMarkersTo(t testing.TB, g *vmtest.Guest, marker string, n int) {
	t.Helper()
	script := fmt.Sprintf(`p=x; for k in 1 2 3 4 5 6 7 8 9 10; do p=$p$p; done; i=0; `+
		`while [ $i -lt %d ]; do echo $p >%s; i=$((i + 1)); done`, n, marker)
	line := fmt.Sprintf(`sh for c in $(seq 0 %d); do taskset -c $c sh -c '%s' & done; wait`, g.CPUs-1, script)
	if _, err := g.CommandWithin(5*time.Minute, line); err != nil {
		t.Fatal(err)
	}
}

// run runs a program on the host to its end (2 minutes at most) and
// returns its standard output, failing the test when it fails.
func run(t testing.TB, name string, args ...string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	var stderr bytes.Buffer
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("%s %s: %v\n%s%s", name, strings.Join(args, " "), err, out, stderr.String())
	}
	return string(out)
}
