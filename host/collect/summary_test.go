package collect_test

import (
	"strings"
	"testing"

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
