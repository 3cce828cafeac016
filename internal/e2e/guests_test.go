package e2e

import (
	"errors"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/vtrace/vtrace/internal/testutil"
	"github.com/vtrace/vtrace/internal/vmtest"
)

// TestIntegrationTwoGuests: two real TCG guests (1 vCPU each) in one
// `vtrace host collect --dir a=DIR --dir b=DIR --start --host-events`,
// each writing numbered markers. Each guest's capture is lossless against
// its own kernel's counters; trace-cmd's merged report of OUT/host.dat and
// both trace.dat files shows each guest's markers in order and after the
// host's marker before that guest's start order; host.dat maps each
// guest's vCPU to its qemu thread (a GUEST option per guest). Then, in a
// second capture of the same guests, b's qemu is killed mid-capture: a's
// capture goes on to the end and is lossless, b's ends by itself, is valid
// (trace-cmd reads it) and the summary says b went away.
func TestIntegrationTwoGuests(t *testing.T) {
	logDuration(t)
	tc := testutil.NeedProgram(t, "trace-cmd", "trace-cmd")
	guests := map[string]*vmtest.Guest{}
	names := []string{"a", "b"}
	for _, n := range names {
		guests[n] = vmtest.Boot(t, vmtest.Options{CPUs: 1, Events: "none", QMP: true})
		// The guests' own buffers, with a clock user space reads, so
		// that the host can place them on its timeline.
		command(t, guests[n], "sh", "echo mono >/sys/kernel/tracing/trace_clock")
	}
	ga, gb := guests["a"], guests["b"]
	out := filepath.Join(t.TempDir(), "capture")
	before := map[string][]vmtest.CPUStats{"a": stats(t, ga), "b": stats(t, gb)}
	c := runCollector(t, out, "--dir", "a="+ga.Dir, "--dir", "b="+gb.Dir, "--start", "--timeout", "30s",
		"--host-events", "sched:sched_process_exec", "--qmp", "a="+ga.QMP, "--qmp", "b="+gb.QMP)
	for _, n := range names {
		c.waitRecordingIn(guests[n], filepath.Join(out, n))
	}
	markers := func(gs ...*vmtest.Guest) {
		var ids []int
		for _, g := range gs {
			id, err := g.StartWorkload("marker", 4, "10000")
			if err != nil {
				t.Fatal(err)
			}
			ids = append(ids, id)
		}
		for i, g := range gs {
			if err := g.WaitWorkload(ids[i], 2*time.Minute); err != nil {
				t.Fatal(err)
			}
		}
	}
	markers(ga, gb)
	for _, n := range names {
		command(t, guests[n], "trace", "off")
	}
	c.stop(syscall.SIGTERM)
	for _, want := range []string{"start orders: sent within ", "a: clock mono: ", "b: clock mono: ",
		"wrote " + filepath.Join(out, "host.dat") + ": trace-cmd report -i " + filepath.Join(out, "host.dat") + " -i " + filepath.Join(out, "a.dat") + " -i " + filepath.Join(out, "b.dat")} {
		if !strings.Contains(c.stdout.String(), want) {
			t.Errorf("the summary does not say %q", want)
		}
	}
	for _, n := range names {
		t.Run("lossless "+n, func(t *testing.T) {
			checkLossless(t, scanCaptures(t, 1, filepath.Join(out, n)), before[n], stats(t, guests[n]))
		})
	}
	checkMerged(t, tc, out, names)
	dump, err := exec.Command(tc, "dump", "--options", "-i", filepath.Join(out, "host.dat")).CombinedOutput()
	if err != nil {
		t.Fatalf("trace-cmd dump --options: %v\n%s", err, dump)
	}
	if pairs := regexp.MustCompile(`(?m)^\s*\d+ \d+ \[guest cpu, host pid\]`).FindAllString(string(dump), -1); len(pairs) != 2 {
		t.Errorf("host.dat maps %d vCPUs, want one per guest:\n%s", len(pairs), dump)
	}
	// vtrace host convert of OUT/host finds every guest again.
	again := filepath.Join(t.TempDir(), "host.dat")
	vtrace(t, "host", "convert", filepath.Join(out, "host"), "-o", again)
	if b, err := exec.Command(tc, "dump", "--options", "-i", again).CombinedOutput(); err != nil || string(b) != string(dump) {
		t.Errorf("vtrace host convert OUT/host: the options differ (%v):\n%s\nwant:\n%s", err, b, dump)
	}

	// b's qemu killed mid-capture.
	for _, n := range names {
		command(t, guests[n], "trace", "on")
	}
	out2 := filepath.Join(t.TempDir(), "capture2")
	beforeA := stats(t, ga)
	c2 := runCollector(t, out2, "--dir", "a="+ga.Dir, "--dir", "b="+gb.Dir, "--start", "--timeout", "30s")
	for _, n := range names {
		c2.waitRecordingIn(guests[n], filepath.Join(out2, n))
	}
	if _, err := gb.StartWorkload("marker", 60, "10000"); err != nil {
		t.Fatal(err)
	}
	idA, err := ga.StartWorkload("marker", 4, "10000")
	if err != nil {
		t.Fatal(err)
	}
	time.Sleep(time.Second) // b records; then its qemu goes
	syscall.Kill(gb.Pid(), syscall.SIGKILL)
	<-gb.Exited()
	if err := ga.WaitWorkload(idA, 2*time.Minute); err != nil {
		t.Fatal(err)
	}
	command(t, ga, "trace", "off")
	select {
	case <-c2.done:
		t.Fatalf("collect ended before its stop:\n%s%s", c2.stdout.String(), c2.stderr.String())
	default:
	}
	c2.cmd.Process.Signal(syscall.SIGTERM)
	c2.wait(time.Minute)
	t.Logf("vtrace host collect (b killed):\n%s%s", c2.stdout.String(), c2.stderr.String())
	var ee *exec.ExitError
	if !errors.As(c2.err, &ee) || ee.ExitCode() != 1 {
		t.Errorf("collect: %v, want exit status 1 (b went away)", c2.err)
	}
	for _, want := range []string{"b: WARNING: the guest went away at ", "qemu exited"} {
		if !strings.Contains(c2.stdout.String(), want) {
			t.Errorf("the summary does not say %q", want)
		}
	}
	if strings.Contains(c2.stdout.String(), "a: WARNING") {
		t.Errorf("a's capture has warnings")
	}
	checkLossless(t, scanCaptures(t, 1, filepath.Join(out2, "a")), beforeA, stats(t, ga))
	scanCaptures(t, 1, filepath.Join(out2, "b"))
	if got := markersOf(t, tc, filepath.Join(out2, "b", "trace.dat")); len(got) == 0 {
		t.Errorf("b's trace.dat holds no marker")
	}
}

var (
	guestMark = regexp.MustCompile(`^\s*(\S+?): .*print:.*vtrace cpu0 (\d+)\s*$`)
	startMark = regexp.MustCompile(`^\s*(\S+?): .*print:.*vtrace-start guest=(\S+)\s*$`)
)

// markersOf returns the numbers of the workload's markers in file.
func markersOf(t testing.TB, tc, file string) []int {
	t.Helper()
	out, err := exec.Command(tc, "report", "-i", file).Output()
	if err != nil {
		t.Fatalf("trace-cmd report -i %s: %v", file, err)
	}
	var got []int
	for _, line := range strings.Split(string(out), "\n") {
		if i := strings.Index(line, "vtrace cpu0 "); i >= 0 {
			n, _ := strconv.Atoi(strings.Fields(line[i+len("vtrace cpu0 "):])[0])
			got = append(got, n)
		}
	}
	return got
}

// checkMerged reads `trace-cmd report -t -i OUT/host.dat -i OUT/NAME/trace.dat...`:
// every guest's markers are there, as many as in its own trace.dat, in
// order, and after the host's "vtrace-start guest=NAME" marker.
func checkMerged(t *testing.T, tc, out string, names []string) {
	t.Helper()
	args := []string{"report", "-t", "-i", filepath.Join(out, "host.dat")}
	file := map[string]string{}
	for _, n := range names {
		// OUT/NAME.dat links to NAME/trace.dat: trace-cmd names each
		// line's file by its base name.
		args = append(args, "-i", filepath.Join(out, n+".dat"))
		file[n+".dat"] = n
	}
	report, err := exec.Command(tc, args...).Output()
	if err != nil {
		t.Fatalf("trace-cmd %s: %v", strings.Join(args, " "), err)
	}
	started := map[string]int{}
	seen := map[string][]int{}
	for i, line := range strings.Split(string(report), "\n") {
		if m := startMark.FindStringSubmatch(line); m != nil {
			started[m[2]] = i + 1
			continue
		}
		m := guestMark.FindStringSubmatch(line)
		if m == nil {
			continue
		}
		n, ok := file[m[1]]
		if !ok {
			t.Fatalf("merged report: a marker from %q, not a guest's file: %q", m[1], line)
		}
		if started[n] == 0 {
			t.Errorf("merged report: %s's marker before the host's start marker for it: %q", n, line)
		}
		v, _ := strconv.Atoi(m[2])
		if s := seen[n]; len(s) > 0 && v <= s[len(s)-1] {
			t.Errorf("merged report: %s's marker %d after %d", n, v, s[len(s)-1])
		}
		seen[n] = append(seen[n], v)
	}
	for _, n := range names {
		own := markersOf(t, tc, filepath.Join(out, n, "trace.dat"))
		if len(own) == 0 || len(seen[n]) != len(own) {
			t.Errorf("guest %s: %d markers in its trace.dat, %d in the merged report", n, len(own), len(seen[n]))
		}
		t.Logf("guest %s: %d markers, in order, after the host's start marker (line %d)", n, len(seen[n]), started[n])
	}
}
