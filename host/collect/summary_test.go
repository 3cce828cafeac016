package collect_test

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/vtrace/vtrace/host/collect"
	"github.com/vtrace/vtrace/proto/ringbuf"
	"github.com/vtrace/vtrace/proto/wire"
)

// TestSummaryLossFigures: without the agent's counters, pages flagged
// without a count make the loss "at least" the stored counts plus one per
// such page; with them, the kernel's figure is the one shown; pages
// flagged for losses before the recording are no loss of it.
func TestSummaryLossFigures(t *testing.T) {
	flagged := ringbuf.Stats{Pages: 40, Events: 900, MissedPages: 5, MissedEvents: 6678, MissedUncounted: 3}
	sum := collect.Summary{Out: "/c", PageSize: 4096, CPUs: []collect.CPU{
		{CPU: 0, File: "/c/cpu0.raw", Bytes: 40 * 4096, Stats: ringbuf.Stats{Pages: 40, Events: 1000}},
		{CPU: 1, File: "/c/cpu1.raw", Bytes: 40 * 4096, Stats: flagged},
		{CPU: 2, File: "/c/cpu2.raw", NotStreamed: true},
	}}
	write := func() string {
		var b strings.Builder
		if err := sum.Write(&b); err != nil {
			t.Fatal(err)
		}
		return b.String()
	}
	text := write()
	for _, want := range []string{
		"WARNING: at least 6681 events lost on CPU 1: the guest's ring buffer overwrote them (5 pages flagged, 3 without a count",
		"WARNING: at least 6681 events lost in all",
		"   2  cpu2.raw  not streamed",
		"WARNING: CPU 2 was not streamed",
	} {
		if !strings.Contains(text, want) {
			t.Errorf("without counters, the summary lacks %q:\n%s", want, text)
		}
	}

	sum.AgentStats = []wire.CPUStats{{CPU: 0, ReadEvents: 1000}, {CPU: 1, ReadEvents: 900, Overrun: 164400, CommitOverrun: 5, DroppedEvents: 50}}
	text = write()
	for _, want := range []string{
		"WARNING: 164455 events lost on CPU 1 (overrun 164400, commit overrun 5, dropped 50)",
		"WARNING: 164455 events lost in all: the capture is incomplete",
	} {
		if !strings.Contains(text, want) {
			t.Errorf("with the agent's counters, the summary lacks %q:\n%s", want, text)
		}
	}
	if strings.Contains(text, "at least") || strings.Contains(text, "handed out") {
		t.Errorf("with the agent's counters, the summary still gives the pages' lower bound, or a missing-events warning:\n%s", text)
	}

	sum.AgentStats[1].Overrun, sum.AgentStats[1].CommitOverrun, sum.AgentStats[1].DroppedEvents = 0, 0, 0
	text = write()
	if strings.Contains(text, "WARNING") && !strings.Contains(text, "CPU 2 was not streamed") || strings.Contains(text, "events lost") ||
		!strings.Contains(text, "5 pages are flagged for events the ring buffer lost before this recording") {
		t.Errorf("a recording that lost nothing, after earlier losses:\n%s", text)
	}
}

// TestMultiSummary: one table with a guest column (the agent's columns
// empty for a guest without final counters), each guest's lines prefixed
// with its name, a guest gone and one never recorded said so, the start
// spread, and host.dat with the guests' links.
func TestMultiSummary(t *testing.T) {
	at := time.Date(2026, 1, 2, 3, 4, 5, 6e6, time.UTC)
	ms := collect.MultiSummary{Out: "/o", StartsSent: 62 * time.Microsecond, StartsAnswered: 181 * time.Millisecond,
		FirstStarted: "b", LastStarted: "a", HostDat: "/o/host.dat", Guests: []collect.GuestSummary{
			{Name: "a", Link: "/o/a.dat", Summary: collect.Summary{Out: "/o/a", PageSize: 4096, TraceDat: "/o/a/trace.dat",
				CPUs:       []collect.CPU{{CPU: 0, File: "/o/a/cpu0.raw", Bytes: 8192, Stats: ringbuf.Stats{Pages: 2, Events: 30}}},
				AgentStats: []wire.CPUStats{{CPU: 0, ReadEvents: 30}}}},
			{Name: "b", Link: "/o/b.dat", Summary: collect.Summary{Out: "/o/b", PageSize: 4096, TraceDat: "/o/b/trace.dat",
				CPUs: []collect.CPU{{CPU: 0, File: "/o/b/cpu0.raw", Bytes: 4096, Stats: ringbuf.Stats{Pages: 1, Events: 7}}},
				Gone: &collect.Gone{At: at, Why: "qemu exited"}}},
			{Name: "c", Err: errors.New("start recording: refused")},
		}}
	var b strings.Builder
	if err := ms.Write(&b); err != nil {
		t.Fatal(err)
	}
	text := b.String()
	t.Logf("\n%s", text)
	for _, want := range []string{
		"guest  cpu      file  bytes  pages  events  missed pages  missed events  cut bytes  entries  read  overrun  dropped\n",
		"    a    0  cpu0.raw   8192      2      30             0              0          0        0    30        0        0\n",
		"    b    0  cpu0.raw   4096      1       7             0              0          0   ",
		"b: WARNING: the guest went away at 03:04:05.006: qemu exited; the capture holds what arrived before\n",
		"a: wrote /o/a/trace.dat",
		"c: WARNING: no capture: start recording: refused\n",
		"start orders: sent within 62µs of each other, answered within 181ms (first b, last a)\n",
		"wrote /o/host.dat: trace-cmd report -i /o/host.dat -i /o/a.dat -i /o/b.dat\n",
	} {
		if !strings.Contains(text, want) {
			t.Errorf("the summary lacks %q", want)
		}
	}
	if strings.Contains(text, "    c ") {
		t.Errorf("a guest never recorded has rows")
	}
}
