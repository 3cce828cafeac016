package collect_test

import (
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/vtrace/vtrace/internal/testutil"
)

// reportLine matches an event line of trace-cmd report: "comm-pid [cpu] ts: name:".
var reportLine = regexp.MustCompile(`^\s*(.+)-(\d+)\s+\[(\d+)\]\s+(?:\S+\s+)?(\d+\.\d+):\s+([A-Za-z0-9_]+):`)

// summaryRow returns the fields of the summary's "all" row.
func summaryRow(t *testing.T, out string) []string {
	t.Helper()
	for _, line := range strings.Split(out, "\n") {
		if f := strings.Fields(line); len(f) > 0 && f[0] == "all" {
			return f
		}
	}
	t.Fatalf("no \"all\" row in the summary:\n%s", out)
	return nil
}

// TestIntegrationCollectProtocolEvents runs `vtrace host collect --start
// --events sched:sched_switch,irq` against this repository's agent in
// loopback mode: OUT/meta and OUT/trace.dat are made, trace-cmd reads as
// many events as the page reader counted and the agent says it read, only
// of the chosen events; an unknown event is refused.
func TestIntegrationCollectProtocolEvents(t *testing.T) {
	tc := testutil.NeedProgram(t, "trace-cmd", "trace-cmd")
	inst, _, dir := loopback(t, "vtrace-collect-proto")
	testutil.StartAgent(t, testutil.AgentOptions{Tracefs: inst, Dir: dir})
	out := filepath.Join(t.TempDir(), "capture")

	_, stderr, err := testutil.RunVtrace(t, "host", "collect", "--dir", dir, "-o", out, "--start", "--events", "nosuch:event", "--duration", "1s")
	if err == nil || !strings.Contains(stderr, "nosuch") {
		t.Errorf("collect --events nosuch:event: %v, want an error naming the event\n%s", err, stderr)
	}
	if ents, _ := filepath.Glob(filepath.Join(out, "cpu*.raw")); len(ents) != 0 {
		t.Errorf("the refused capture left %v", ents)
	}

	stdout, stderr, err := testutil.RunVtrace(t, "host", "collect", "--dir", dir, "-o", out, "--force", "--start",
		"--events", "sched:sched_switch,irq", "--duration", "2s", "--timeout", "30s")
	if err != nil {
		t.Fatalf("collect: %v\n%s\n%s", err, stdout, stderr)
	}
	t.Logf("summary:\n%s", stdout)
	row := summaryRow(t, stdout)
	// all, bytes, pages, events, missed pages, missed events, cut, entries, read, overrun, dropped
	if len(row) != 11 {
		t.Fatalf("summary row %q: want the agent's counters too", row)
	}
	events, agentRead := row[3], row[8]
	for _, p := range []string{"meta/events/header_page", "meta/events/sched/sched_switch/format", "trace.dat"} {
		if _, err := os.Stat(filepath.Join(out, p)); err != nil {
			t.Errorf("capture lacks %s: %v", p, err)
		}
	}
	names, _ := report(t, tc, filepath.Join(out, "trace.dat"))
	n := 0
	for _, c := range names {
		n += c
	}
	t.Logf("trace-cmd report: %d events %v", n, names)
	if n == 0 || names["sched_switch"] == 0 {
		t.Errorf("trace-cmd report shows %d events, %d sched_switch; want some", n, names["sched_switch"])
	}
	for name := range names {
		if name != "sched_switch" && !strings.HasPrefix(name, "irq_") && !strings.HasPrefix(name, "softirq_") && name != "tasklet_entry" && name != "tasklet_exit" {
			t.Errorf("trace-cmd report shows %s, which was not chosen", name)
		}
	}
	if events != agentRead || events != strconv.Itoa(n) {
		t.Errorf("events: page reader %s, agent read %s, trace-cmd %d; want all equal", events, agentRead, n)
	}
}

// TestIntegrationHostStatusStates: status says recording after start and
// idle after stop, with a collector (without --start) reading the data.
func TestIntegrationHostStatusStates(t *testing.T) {
	inst, _, dir := loopback(t, "vtrace-status")
	testutil.StartAgent(t, testutil.AgentOptions{Tracefs: inst, Dir: dir})
	testutil.StartVtrace(t, "host", "collect", "--dir", dir, "-o", filepath.Join(t.TempDir(), "c"))
	run := func(args ...string) string { return mustHost(t, dir, args...) }
	if s := run("status"); !strings.Contains(s, "state:    idle") {
		t.Errorf("status before start:\n%s", s)
	}
	run("start", "--events", "sched:sched_switch")
	if s := run("status"); !strings.Contains(s, "state:    recording") || !strings.Contains(s, "sched:sched_switch") {
		t.Errorf("status while recording:\n%s", s)
	}
	time.Sleep(100 * time.Millisecond) // something to record
	if s := run("stop"); !strings.Contains(s, "final counters") {
		t.Errorf("stop:\n%s", s)
	}
	if s := run("status"); !strings.Contains(s, "state:    idle") {
		t.Errorf("status after stop:\n%s", s)
	}
}
