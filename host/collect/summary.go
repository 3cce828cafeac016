package collect

import (
	"fmt"
	"io"
	"path/filepath"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/vtrace/vtrace/host/session"
	"github.com/vtrace/vtrace/proto/wire"
)

// Write prints the summary as a table, one row per CPU and a total (with
// the agent's final counters when it sent them), then a WARNING line per
// CPU that lost events, the page reader's complaints and the notes.
func (s Summary) Write(w io.Writer) error {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	agent := map[int]wire.CPUStats{}
	for _, c := range s.AgentStats {
		agent[int(c.CPU)] = c
	}
	var extraHead string
	if len(agent) > 0 {
		extraHead = "entries\tread\toverrun\tdropped\t"
	}
	fmt.Fprintf(tw, "cpu\tfile\tbytes\tpages\tevents\tmissed pages\tmissed events\tcut bytes\t%s\n", extraHead)
	var total CPU
	var totalAgent wire.CPUStats
	extra := func(c wire.CPUStats) string {
		if len(agent) == 0 {
			return ""
		}
		return fmt.Sprintf("%d\t%d\t%d\t%d\t", c.Entries, c.ReadEvents, c.Overrun+c.CommitOverrun, c.DroppedEvents)
	}
	for _, c := range s.CPUs {
		a := agent[c.CPU]
		totalAgent.Entries += a.Entries
		totalAgent.ReadEvents += a.ReadEvents
		totalAgent.Overrun += a.Overrun + a.CommitOverrun
		totalAgent.DroppedEvents += a.DroppedEvents
		fmt.Fprintf(tw, "%d\t%s\t%d\t%d\t%d\t%d\t%d\t%d\t%s\n", c.CPU, filepath.Base(c.File), c.Bytes,
			c.Stats.Pages, c.Stats.Events, c.Stats.MissedPages, c.Stats.MissedEvents, c.Dropped, extra(a))
		total.Bytes += c.Bytes
		total.Dropped += c.Dropped
		total.Stats.Pages += c.Stats.Pages
		total.Stats.Events += c.Stats.Events
		total.Stats.MissedPages += c.Stats.MissedPages
		total.Stats.MissedEvents += c.Stats.MissedEvents
	}
	fmt.Fprintf(tw, "all\t\t%d\t%d\t%d\t%d\t%d\t%d\t%s\n", total.Bytes, total.Stats.Pages, total.Stats.Events,
		total.Stats.MissedPages, total.Stats.MissedEvents, total.Dropped, extra(totalAgent))
	if err := tw.Flush(); err != nil {
		return err
	}
	var b strings.Builder
	fmt.Fprintf(&b, "saved %s in %s (%s pages) in %v\n", size(total.Bytes), s.Out, size(int64(s.PageSize)), s.Elapsed.Round(time.Millisecond))
	if lost := totalAgent.Overrun + totalAgent.DroppedEvents; lost > 0 {
		session.WriteLossWarnings(&b, s.AgentStats)
		fmt.Fprintf(&b, "WARNING: %d events lost in all: the capture is incomplete\n", lost)
	}
	if total.Stats.MissedPages > 0 {
		fmt.Fprintf(&b, "the guest's ring buffer overwrote events before %d pages: the missed events are lost\n", total.Stats.MissedPages)
	}
	for _, c := range s.CPUs {
		if c.ScanErr != nil {
			fmt.Fprintf(&b, "CPU %d: read %s: %v\n", c.CPU, filepath.Base(c.File), c.ScanErr)
		}
	}
	for _, n := range s.Notes {
		fmt.Fprintf(&b, "%s\n", n)
	}
	if s.Meta != "" {
		fmt.Fprintf(&b, "metadata in %s\n", s.Meta)
	}
	if s.TraceDat != "" {
		fmt.Fprintf(&b, "wrote %s: trace-cmd report -i %s\n", s.TraceDat, s.TraceDat)
	}
	s.Timeline.write(&b, s.TraceDat)
	_, err := io.WriteString(w, b.String())
	return err
}

// size prints n bytes the way people read them.
func size(n int64) string {
	const unit = 1024
	if n < unit {
		return fmt.Sprintf("%d B", n)
	}
	f, suffix := float64(n), ""
	for _, s := range []string{"KiB", "MiB", "GiB", "TiB"} {
		f /= unit
		suffix = s
		if f < unit {
			break
		}
	}
	return fmt.Sprintf("%.1f %s", f, suffix)
}
