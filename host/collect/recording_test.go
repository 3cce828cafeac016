package collect_test

// Recordings through the binary: `vtrace host collect --start`, `host
// start`, `stop` and `status` with settings (events, filters, buffer size,
// clock) against this repository's agent in loopback mode (its ports are
// the host's FIFOs) on this machine's tracefs.

import (
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/vtrace/vtrace/host/fifo"
	"github.com/vtrace/vtrace/internal/sys"
	"github.com/vtrace/vtrace/internal/testutil"
	"github.com/vtrace/vtrace/proto/channel"
)

// hostCommand runs `vtrace host ARGS --dir DIR --timeout 30s` and returns
// what it wrote (stdout, then stderr) and its error.
func hostCommand(t *testing.T, dir string, args ...string) (string, error) {
	t.Helper()
	stdout, stderr, err := testutil.RunVtrace(t, append([]string{"host"}, append(args, "--dir", dir, "--timeout", "30s")...)...)
	return stdout + stderr, err
}

// mustHost is hostCommand failing the test on an error.
func mustHost(t *testing.T, dir string, args ...string) string {
	t.Helper()
	out, err := hostCommand(t, dir, args...)
	if err != nil {
		t.Fatalf("vtrace host %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return out
}

// cpuRow is one CPU's row of collect's summary: the page reader's counts
// and the agent's final counters.
type cpuRow struct {
	events, missedPages, missedEvents, entries, read, overrun, dropped int64
}

// summaryCPUs parses the per-CPU rows of collect's summary (with the
// agent's columns).
func summaryCPUs(t *testing.T, out string) map[int]cpuRow {
	t.Helper()
	rows := map[int]cpuRow{}
	for _, line := range strings.Split(out, "\n") {
		f := strings.Fields(line)
		if len(f) != 12 || !strings.HasSuffix(f[1], ".raw") {
			continue
		}
		var n [12]int64
		for i, s := range f {
			if i == 1 {
				continue
			}
			v, err := strconv.ParseInt(s, 10, 64)
			if err != nil {
				t.Fatalf("summary row %q: %v", line, err)
			}
			n[i] = v
		}
		rows[int(n[0])] = cpuRow{events: n[4], missedPages: n[5], missedEvents: n[6], entries: n[8], read: n[9], overrun: n[10], dropped: n[11]}
	}
	if len(rows) == 0 {
		t.Fatalf("no per-CPU rows with the agent's counters in the summary:\n%s", out)
	}
	return rows
}

// report runs trace-cmd report on a trace.dat and counts events by name
// and by CPU.
func report(t *testing.T, tc, dat string) (names map[string]int, perCPU map[int]int) {
	t.Helper()
	out, err := exec.Command(tc, "report", "-i", dat).Output()
	if err != nil {
		t.Fatalf("trace-cmd report -i %s: %v", dat, err)
	}
	names, perCPU = map[string]int{}, map[int]int{}
	for _, line := range strings.Split(string(out), "\n") {
		if m := reportLine.FindStringSubmatch(line); m != nil {
			names[m[5]]++
			cpu, _ := strconv.Atoi(m[3])
			perCPU[cpu]++
		}
	}
	return names, perCPU
}

// busy runs a process-spawning loop pinned to each CPU until the returned
// function is called.
func busy(t *testing.T, cpus int) func() {
	t.Helper()
	var cmds []*exec.Cmd
	for cpu := range cpus {
		c := exec.Command("taskset", "-c", strconv.Itoa(cpu), "sh", "-c", "while :; do /bin/true; done")
		if err := c.Start(); err != nil {
			t.Fatal(err)
		}
		cmds = append(cmds, c)
	}
	stopped := false
	stop := func() {
		if stopped {
			return
		}
		stopped = true
		for _, c := range cmds {
			c.Process.Kill()
			c.Wait()
		}
	}
	t.Cleanup(stop)
	return stop
}

// TestIntegrationRecordChosenEvents: collect --start --events
// sched:sched_switch records sched_switch and nothing else (irq is not
// enabled even though the machine takes interrupts); the stop is exact
// although events keep coming: per CPU the agent leaves no entry behind
// and every event it read is in the capture; trace-cmd report --stat
// shows the guest's per-CPU stats (CPUSTAT).
func TestIntegrationRecordChosenEvents(t *testing.T) {
	tc := testutil.NeedProgram(t, "trace-cmd", "trace-cmd")
	testutil.BuildVtrace(t)
	inst, cpus, dir := loopback(t, "vtrace-rec-events-base")
	testutil.StartAgent(t, testutil.AgentOptions{Tracefs: inst, Dir: dir, Instance: "vtrace-rec-events"})
	out := filepath.Join(t.TempDir(), "capture")

	stop := busy(t, cpus) // sched_switch all along, through the stop
	stdout, stderr, err := testutil.RunVtrace(t, "host", "collect", "--dir", dir, "-o", out, "--start", "--events", "sched:sched_switch",
		"--duration", "2s", "--timeout", "30s")
	stop()
	if err != nil {
		t.Fatalf("collect: %v\n%s\n%s", err, stdout, stderr)
	}
	t.Logf("summary:\n%s", stdout)
	names, perCPU := report(t, tc, filepath.Join(out, "trace.dat"))
	t.Logf("trace-cmd report: %v", names)
	if names["sched_switch"] == 0 || len(names) != 1 {
		t.Errorf("trace-cmd report shows %v, want sched_switch only", names)
	}
	for cpu, r := range summaryCPUs(t, stdout) {
		if r.entries != 0 || r.read != r.events || r.events != int64(perCPU[cpu]) || r.overrun != 0 || r.missedPages != 0 {
			t.Errorf("CPU %d: agent says %d entries left, %d read, %d overrun; the capture holds %d events (%d by trace-cmd), %d missed pages; want 0 entries and every read event captured",
				cpu, r.entries, r.read, r.overrun, r.events, perCPU[cpu], r.missedPages)
		}
	}
	if strings.Contains(stdout, "WARNING") {
		t.Errorf("a capture that lost nothing warns:\n%s", stdout)
	}

	// CPUSTAT: trace-cmd report --stat prints each CPU's stats as the
	// guest's kernel wrote them.
	st, err := exec.Command(tc, "report", "--stat", "-i", filepath.Join(out, "trace.dat")).CombinedOutput()
	if err != nil {
		t.Fatalf("trace-cmd report --stat: %v\n%s", err, st)
	}
	for cpu := range cpus {
		if !strings.Contains(string(st), fmt.Sprintf("CPU: %d", cpu)) {
			t.Errorf("trace-cmd report --stat lacks CPU %d:\n%s", cpu, st)
		}
	}
	if n := strings.Count(string(st), "entries: 0"); n != cpus || !strings.Contains(string(st), "read events:") {
		t.Errorf("trace-cmd report --stat: %d CPUs with \"entries: 0\", want %d, and read events:\n%s", n, cpus, st)
	}
}

// tracefsState is what a refused start must leave as it was: the files of
// the tracefs root and of the agent's --tracefs, and which of the test's
// instances exist (other tests on the machine may make theirs).
func tracefsState(t *testing.T, root, inst, prefix string) string {
	t.Helper()
	var b strings.Builder
	for _, d := range []string{root, inst} {
		for _, f := range []string{"set_event", "buffer_size_kb", "trace_clock", "buffer_percent", "tracing_on"} {
			v, err := os.ReadFile(filepath.Join(d, f))
			if err != nil {
				t.Fatal(err)
			}
			fmt.Fprintf(&b, "%s/%s: %s\n", d, f, v)
		}
	}
	ents, err := os.ReadDir(filepath.Join(root, "instances"))
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range ents {
		if strings.HasPrefix(e.Name(), prefix) {
			fmt.Fprintf(&b, "instance %s\n", e.Name())
		}
	}
	return b.String()
}

// TestIntegrationRecordBadSettings: an unknown event, a bad filter, a
// buffer bigger than RAM and an unknown clock each make collect --start
// fail with an error naming the problem, leave no capture, and leave
// tracefs as it was; a good capture afterwards works.
func TestIntegrationRecordBadSettings(t *testing.T) {
	inst, _, dir := loopback(t, "vtrace-rec-bad-base")
	root := filepath.Dir(filepath.Dir(inst))
	a := testutil.StartAgent(t, testutil.AgentOptions{Tracefs: inst, Dir: dir, Instance: "vtrace-rec-bad"})
	out := filepath.Join(t.TempDir(), "capture")
	huge := strconv.FormatUint(testutil.MemTotalKiB(t)*4, 10) + "K"

	before := tracefsState(t, root, inst, "vtrace-rec-bad")
	for _, tc := range []struct {
		args []string
		want []string
	}{
		{[]string{"--events", "sched:no_such_event"}, []string{"event sched:no_such_event", "available_events"}},
		{[]string{"--events", "sched:sched_switch", "--filter", "sched:sched_switch=nonsense >< 3"},
			[]string{"filter on sched:sched_switch", "nonsense >< 3"}},
		{[]string{"--events", "sched:sched_switch", "--buffer-size", huge}, []string{"buffer size", "cannot allocate memory"}},
		{[]string{"--events", "sched:sched_switch", "--clock", "no-such-clock"}, []string{"clock no-such-clock", "not offered"}},
	} {
		args := append([]string{"host", "collect", "--dir", dir, "-o", out, "--start", "--duration", "1s", "--timeout", "30s"}, tc.args...)
		stdout, stderr, err := testutil.RunVtrace(t, args...)
		t.Logf("%v: %v\n%s", tc.args, err, stderr)
		var exit *exec.ExitError
		if !errors.As(err, &exit) || exit.ExitCode() == 0 {
			t.Errorf("collect %v: %v, want a non-zero exit\n%s", tc.args, err, stdout)
		}
		for _, w := range tc.want {
			if !strings.Contains(stderr, w) {
				t.Errorf("collect %v: stderr %q does not say %q", tc.args, stderr, w)
			}
		}
		if ents, _ := filepath.Glob(filepath.Join(out, "*")); len(ents) != 0 {
			t.Errorf("collect %v left %v", tc.args, ents)
		}
		if after := tracefsState(t, root, inst, "vtrace-rec-bad"); after != before {
			t.Errorf("collect %v changed tracefs:\nbefore:\n%s\nafter:\n%s", tc.args, before, after)
		}
	}
	stdout, stderr, err := testutil.RunVtrace(t, "host", "collect", "--dir", dir, "-o", out, "--start", "--events", "sched:sched_switch",
		"--duration", "500ms", "--timeout", "30s")
	if err != nil {
		t.Fatalf("a good capture after the bad ones: %v\n%s\n%s\nagent:\n%s", err, stdout, stderr, a.Output())
	}
	if after := tracefsState(t, root, inst, "vtrace-rec-bad"); after != before {
		t.Errorf("a capture changed tracefs:\nbefore:\n%s\nafter:\n%s", before, after)
	}
}

// instanceStats reads every CPU's per_cpu/cpuN/stats of an instance.
func instanceStats(t *testing.T, dir string, cpus int) map[int]map[string]int64 {
	t.Helper()
	out := map[int]map[string]int64{}
	for cpu := range cpus {
		out[cpu] = testutil.CPUStats(t, dir, cpu)
	}
	return out
}

// TestIntegrationRecordOverrun: a 16 KiB buffer under load while the host
// does not read (collect stopped with SIGSTOP, its FIFOs and the agent's
// pipes full) overruns (raw_syscalls fill them fast). The summary's counters are the instance's own
// per_cpu stats, read once tracing is off in it; each CPU that overran
// has pages flagged for missed events, and every event read is captured;
// collect warns loudly and trace.dat's CPUSTAT says the same.
func TestIntegrationRecordOverrun(t *testing.T) {
	tc := testutil.NeedProgram(t, "trace-cmd", "trace-cmd")
	testutil.BuildVtrace(t)
	inst, cpus, dir := loopback(t, "vtrace-rec-overrun-base")
	a := testutil.StartAgent(t, testutil.AgentOptions{Tracefs: inst, Dir: dir, Instance: "vtrace-rec-overrun", Args: []string{"--pipe-size", "64K"}})
	out := filepath.Join(t.TempDir(), "capture")

	col := testutil.StartVtrace(t, "host", "collect", "--dir", dir, "-o", out, "--start",
		"--events", "sched,irq,raw_syscalls", "--buffer-size", "16K", "--timeout", "30s", "--drain-timeout", "30s")
	// The events are enabled last: then the agent records.
	testutil.WaitFor(t, "the recording to start", func() bool {
		b, _ := os.ReadFile(filepath.Join(a.Own, "set_event"))
		return strings.Contains(string(b), "raw_syscalls:")
	})
	col.Signal(syscall.SIGSTOP)
	stop := busy(t, cpus)
	time.Sleep(2 * time.Second) // the workload runs while nobody reads
	stop()
	// Freeze the instance: its counters are final from here.
	writeTracefs(t, filepath.Join(a.Own, "tracing_on"), "0")
	kernel := instanceStats(t, a.Own, cpus)
	col.Signal(syscall.SIGCONT)
	// Interrupt collect only once it read the agent's answer to Start (and
	// every Stats): an interrupted start is a failed capture.
	_, ctlOut := fifo.Paths(dir, channel.Ctl)
	ctl, err := sys.Open(ctlOut, sys.FIFOReadNonblock, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer sys.Close(ctl)
	testutil.WaitFor(t, "collect to read the agent's replies", func() bool { n, err := sys.PipeBuffered(ctl); return err == nil && n == 0 })
	col.Signal(syscall.SIGINT)
	if err := col.Wait(); err != nil {
		t.Fatalf("collect: %v\n%s", err, col.Output())
	}
	stdout := col.Stdout()
	t.Logf("summary:\n%s", stdout)
	t.Logf("instance stats at the freeze: %v", kernel)
	if testutil.IsDir(a.Own) {
		t.Errorf("instance %s still there after the capture", a.Own)
	}
	overran := false
	for cpu, r := range summaryCPUs(t, stdout) {
		k := kernel[cpu]
		if r.overrun != k["overrun"]+k["commit overrun"] || r.dropped != k["dropped events"] || r.read != k["read events"]+k["entries"] || r.entries != 0 {
			t.Errorf("CPU %d: summary %+v, the instance said %v", cpu, r, k)
		}
		if r.events != r.read {
			t.Errorf("CPU %d: %d events captured, the agent read %d", cpu, r.events, r.read)
		}
		if (r.overrun > 0) != (r.missedPages > 0) || r.missedEvents > r.overrun {
			t.Errorf("CPU %d: overrun %d, but %d pages flag %d missed events", cpu, r.overrun, r.missedPages, r.missedEvents)
		}
		overran = overran || r.overrun > 0
	}
	if !overran {
		t.Fatal("no CPU overran a 16 KiB buffer nobody read for 2 s")
	}
	if !strings.Contains(stdout, "WARNING: ") || !strings.Contains(stdout, "events lost in all") {
		t.Errorf("no loud warning about the lost events:\n%s", stdout)
	}
	st, err := exec.Command(tc, "report", "--stat", "-i", filepath.Join(out, "trace.dat")).CombinedOutput()
	if err != nil {
		t.Fatalf("trace-cmd report --stat: %v\n%s", err, st)
	}
	for cpu := range cpus {
		if want := fmt.Sprintf("overrun: %d", kernel[cpu]["overrun"]); !strings.Contains(string(st), want) {
			t.Errorf("trace-cmd report --stat lacks CPU %d's %q:\n%s", cpu, want, st)
		}
	}
}

// TestIntegrationRecordTwoCaptures: two captures in a row with other
// events and another clock each make their own trace.dat.
func TestIntegrationRecordTwoCaptures(t *testing.T) {
	tc := testutil.NeedProgram(t, "trace-cmd", "trace-cmd")
	testutil.BuildVtrace(t)
	inst, cpus, dir := loopback(t, "vtrace-rec-two-base")
	a := testutil.StartAgent(t, testutil.AgentOptions{Tracefs: inst, Dir: dir, Instance: "vtrace-rec-two"})

	capture := func(clock string, events ...string) (string, map[string]int) {
		t.Helper()
		out := filepath.Join(t.TempDir(), "capture")
		stop := busy(t, cpus)
		stdout, stderr, err := testutil.RunVtrace(t, "host", "collect", "--dir", dir, "-o", out, "--start", "--events", strings.Join(events, ","),
			"--clock", clock, "--duration", "1s", "--timeout", "30s")
		stop()
		if err != nil {
			t.Fatalf("collect --clock %s --events %v: %v\n%s\n%s", clock, events, err, stdout, stderr)
		}
		names, _ := report(t, tc, filepath.Join(out, "trace.dat"))
		b, err := os.ReadFile(filepath.Join(out, "meta", "trace_clock"))
		if err != nil {
			t.Fatal(err)
		}
		return string(b), names
	}
	clock, names := capture("mono", "sched:sched_process_exec")
	if names["sched_process_exec"] == 0 || len(names) != 1 || !strings.Contains(clock, "[mono]") {
		t.Errorf("first capture: events %v, clock %q; want sched_process_exec only, mono", names, clock)
	}
	clock, names = capture("global", "sched:sched_process_fork", "sched:sched_process_exit")
	if names["sched_process_fork"] == 0 || names["sched_process_exit"] == 0 || len(names) != 2 || !strings.Contains(clock, "[global]") {
		t.Errorf("second capture: events %v, clock %q; want sched_process_fork and _exit only, global", names, clock)
	}
	if testutil.IsDir(a.Own) {
		t.Errorf("instance %s still there after two captures", a.Own)
	}
}

// TestIntegrationAgentExitRemovesInstance: an agent that gets SIGTERM while
// recording removes its instance; so does one after a capture, and one
// killed while recording leaves an instance the next agent takes back.
func TestIntegrationAgentExitRemovesInstance(t *testing.T) {
	inst, _, dir := loopback(t, "vtrace-rec-exit-base")
	name := "vtrace-rec-exit"
	testutil.StartVtrace(t, "host", "collect", "--dir", dir, "-o", filepath.Join(t.TempDir(), "c"))
	host := func(args ...string) string { return mustHost(t, dir, args...) }

	// SIGTERM while recording.
	a := testutil.StartAgent(t, testutil.AgentOptions{Tracefs: inst, Dir: dir, Instance: name})
	host("start", "--events", "sched:sched_switch")
	if !testutil.IsDir(a.Own) {
		t.Fatalf("instance %s missing while recording", a.Own)
	}
	a.Stop(t)
	if testutil.IsDir(a.Own) {
		t.Errorf("instance %s still there after SIGTERM while recording", a.Own)
	}

	// SIGTERM after a capture.
	a = testutil.StartAgent(t, testutil.AgentOptions{Tracefs: inst, Dir: dir, Instance: name})
	host("start", "--events", "sched:sched_switch")
	host("stop")
	if testutil.IsDir(a.Own) {
		t.Errorf("instance %s still there after the stop", a.Own)
	}
	host("start", "--events", "irq")
	host("stop")
	a.Stop(t)
	if testutil.IsDir(a.Own) {
		t.Errorf("instance %s still there after the agent exited", a.Own)
	}
}

// TestIntegrationStatusWhileRecording: while collect --start records, status is
// refused at once (one conversation at a time); with a plain collect
// reading the data and start/stop from the command line, status shows
// recording with the settings, then idle with the last counters.
func TestIntegrationStatusWhileRecording(t *testing.T) {
	inst, _, dir := loopback(t, "vtrace-rec-status-base")
	a := testutil.StartAgent(t, testutil.AgentOptions{Tracefs: inst, Dir: dir, Instance: "vtrace-rec-status"})
	host := func(args ...string) (string, error) { return hostCommand(t, dir, args...) }

	out := filepath.Join(t.TempDir(), "capture")
	col := testutil.StartVtrace(t, "host", "collect", "--dir", dir, "-o", out, "--start", "--events", "sched:sched_switch", "--timeout", "30s")
	testutil.WaitFor(t, "collect --start to record", func() bool { return testutil.IsDir(a.Own) && testutil.IsDir(filepath.Join(out, "meta")) })
	// Pages in the capture: the agent streams, so it has answered the
	// start order (a SIGINT before that answer ends collect with an error,
	// as it should).
	testutil.WaitFor(t, "pages in "+out, func() bool {
		m, _ := filepath.Glob(filepath.Join(out, "cpu*.raw"))
		for _, f := range m {
			if st, err := os.Stat(f); err == nil && st.Size() > 0 {
				return true
			}
		}
		return false
	})
	if s, err := host("status"); err == nil || !strings.Contains(s, "control channel in use") {
		t.Errorf("status during collect --start: %v, want \"control channel in use\"\n%s", err, s)
	}
	col.Signal(syscall.SIGINT)
	if err := col.Wait(); err != nil {
		t.Fatalf("collect --start: %v\n%s", err, col.Output())
	}

	testutil.StartVtrace(t, "host", "collect", "--dir", dir, "-o", filepath.Join(t.TempDir(), "c"))
	if s, err := host("start", "--events", "sched:sched_switch,irq", "--clock", "mono", "--buffer-size", "512K"); err != nil {
		t.Fatalf("start: %v\n%s", err, s)
	}
	s, err := host("status")
	if err != nil {
		t.Fatalf("status: %v\n%s", err, s)
	}
	t.Logf("status while recording:\n%s", s)
	for _, w := range []string{"state:    recording", "events sched:sched_switch,irq", "buffer 512 KiB per CPU", "clock mono",
		"instance: vtrace-rec-status", "cpu  entries"} {
		if !strings.Contains(s, w) {
			t.Errorf("status while recording lacks %q:\n%s", w, s)
		}
	}
	if s, err := host("stop"); err != nil || !strings.Contains(s, "final counters") {
		t.Fatalf("stop: %v\n%s", err, s)
	}
	s, err = host("status")
	if err != nil || !strings.Contains(s, "state:    idle") || !strings.Contains(s, "instance: vtrace-rec-status-base") ||
		!strings.Contains(s, "(the last recording)") || !strings.Contains(s, "final counters of the last recording") {
		t.Errorf("status after stop: %v\n%s", err, s)
	}
	t.Logf("status after stop:\n%s", s)
}

// TestIntegrationInterruptedStartStopsAgent: collect interrupted while it
// waits for the agent's answer to Start (the agent is held with SIGSTOP)
// still stops the agent: once the agent runs again, it is idle and its
// instance is gone.
func TestIntegrationInterruptedStartStopsAgent(t *testing.T) {
	inst, _, dir := loopback(t, "vtrace-rec-intr-base")
	a := testutil.StartAgent(t, testutil.AgentOptions{Tracefs: inst, Dir: dir, Instance: "vtrace-rec-intr"})
	out := filepath.Join(t.TempDir(), "capture")

	col := testutil.StartVtrace(t, "host", "collect", "--dir", dir, "-o", out, "--start", "--events", "sched:sched_switch", "--timeout", "30s")
	// OUT/meta is saved just before Start is sent.
	testutil.WaitFor(t, "collect to save the metadata", func() bool { return testutil.IsDir(filepath.Join(out, "meta")) })
	a.Signal(syscall.SIGSTOP)
	col.Signal(syscall.SIGINT)
	select {
	case <-col.Exited(): // without the stop order collect is gone at once
	case <-time.After(time.Second): // it waits for the StopReply
	}
	a.Signal(syscall.SIGCONT)
	t.Logf("collect: %v\n%s", col.Wait(), col.Output())
	stdout, stderr, err := testutil.RunVtrace(t, "host", "status", "--dir", dir, "--timeout", "30s")
	if err != nil || !strings.Contains(stdout, "state:    idle") {
		t.Errorf("status after the interrupted capture: %v, want idle\n%s%s", err, stdout, stderr)
	}
	if testutil.IsDir(a.Own) {
		t.Errorf("instance %s still there after the interrupted capture", a.Own)
	}
}

// TestIntegrationStartWhileRecording: an agent left recording (by `host
// start`, or a collector that died without stopping it) makes collect
// --start fail at once with the way out, and that way out works.
func TestIntegrationStartWhileRecording(t *testing.T) {
	inst, cpus, dir := loopback(t, "vtrace-recording-base")
	testutil.StartAgent(t, testutil.AgentOptions{Tracefs: inst, Dir: dir, Instance: "vtrace-recording"})
	discardStreams(t, dir, cpus) // `host start` alone leaves the reading to someone
	if _, stderr, err := testutil.RunVtrace(t, "host", "start", "--dir", dir, "--events", "sched:sched_switch"); err != nil {
		t.Fatalf("host start: %v\n%s", err, stderr)
	}
	out := filepath.Join(t.TempDir(), "capture")
	_, stderr, err := testutil.RunVtrace(t, "host", "collect", "--dir", dir, "-o", out, "--start", "--duration", "1s")
	if err == nil || !strings.Contains(stderr, "already recording") || !strings.Contains(stderr, "vtrace host stop --dir "+dir) {
		t.Fatalf("collect --start on a recording agent: %v, want an error naming `vtrace host stop`\n%s", err, stderr)
	}
	if _, stderr, err := testutil.RunVtrace(t, "host", "stop", "--dir", dir); err != nil {
		t.Fatalf("host stop: %v\n%s", err, stderr)
	}
	if stdout, stderr, err := testutil.RunVtrace(t, "host", "collect", "--dir", dir, "-o", out, "--start", "--duration", "1s", "--force"); err != nil {
		t.Fatalf("collect --start after stop: %v\n%s%s", err, stdout, stderr)
	}
}

// discardStreams reads and drops every CPU's stream until the test ends.
func discardStreams(t *testing.T, dir string, cpus int) {
	t.Helper()
	for cpu := range cpus {
		_, path := fifo.Paths(dir, channel.Data(cpu))
		f, err := os.OpenFile(path, os.O_RDWR, 0)
		if err != nil {
			t.Fatal(err)
		}
		go io.Copy(io.Discard, f)
		t.Cleanup(func() { f.Close() })
	}
}
