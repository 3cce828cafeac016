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
// the agent's final counters when it sent them), then WARNING lines: per
// CPU that lost events (the kernel's counters when the agent sent them,
// else at least what the flagged pages say), per CPU whose ring buffer
// handed out events that did not arrive (another reader took them), per
// corrupt page and per CPU that was not streamed; then the page reader's
// complaints and the notes.
func (s Summary) Write(w io.Writer) error {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	agentCols := len(s.AgentStats) > 0
	writeHead(tw, "", agentCols)
	s.writeRows(tw, "", agentCols)
	if err := tw.Flush(); err != nil {
		return err
	}
	var b strings.Builder
	s.writeLines(&b)
	s.Timeline.writeHostDat(&b, s.TraceDat)
	_, err := io.WriteString(w, b.String())
	return err
}

// writeHead writes the table's head; guestCol is the guest column's
// head ("" for none).
func writeHead(tw io.Writer, guestCol string, agentCols bool) {
	if guestCol != "" {
		guestCol += "\t"
	}
	var extraHead string
	if agentCols {
		extraHead = "entries\tread\toverrun\tdropped\t"
	}
	fmt.Fprintf(tw, "%scpu\tfile\tbytes\tpages\tevents\tmissed pages\tmissed events\tcut bytes\t%s\n", guestCol, extraHead)
}

// writeRows writes a row per CPU and the total; guest is the guest
// column's cell ("" for none).
func (s Summary) writeRows(tw io.Writer, guest string, agentCols bool) {
	if guest != "" {
		guest += "\t"
	}
	agent := s.agentStats()
	var total CPU
	var totalAgent wire.CPUStats
	extra := func(c wire.CPUStats) string {
		if !agentCols {
			return ""
		}
		if len(agent) == 0 {
			return "\t\t\t\t"
		}
		return fmt.Sprintf("%d\t%d\t%d\t%d\t", c.Entries, c.ReadEvents, c.Overrun+c.CommitOverrun, c.DroppedEvents)
	}
	for _, c := range s.CPUs {
		if c.NotStreamed {
			fmt.Fprintf(tw, "%s%d\t%s\tnot streamed\t\n", guest, c.CPU, filepath.Base(c.File))
			continue
		}
		a := agent[c.CPU]
		totalAgent.Entries += a.Entries
		totalAgent.ReadEvents += a.ReadEvents
		totalAgent.Overrun += a.Overrun + a.CommitOverrun
		totalAgent.DroppedEvents += a.DroppedEvents
		fmt.Fprintf(tw, "%s%d\t%s\t%d\t%d\t%d\t%d\t%d\t%d\t%s\n", guest, c.CPU, filepath.Base(c.File), c.Bytes,
			c.Stats.Pages, c.Stats.Events, c.Stats.MissedPages, c.Stats.MissedEvents, c.Dropped, extra(a))
		total.add(c)
	}
	fmt.Fprintf(tw, "%sall\t\t%d\t%d\t%d\t%d\t%d\t%d\t%s\n", guest, total.Bytes, total.Stats.Pages, total.Stats.Events,
		total.Stats.MissedPages, total.Stats.MissedEvents, total.Dropped, extra(totalAgent))
}

func (s Summary) agentStats() map[int]wire.CPUStats {
	agent := map[int]wire.CPUStats{}
	for _, c := range s.AgentStats {
		agent[int(c.CPU)] = c
	}
	return agent
}

func (t *CPU) add(c CPU) {
	t.Bytes += c.Bytes
	t.Dropped += c.Dropped
	t.Stats.Pages += c.Stats.Pages
	t.Stats.Events += c.Stats.Events
	t.Stats.MissedPages += c.Stats.MissedPages
	t.Stats.MissedEvents += c.Stats.MissedEvents
	t.Stats.MissedUncounted += c.Stats.MissedUncounted
}

// writeLines writes the lines below the table: what was saved, the
// warnings, the notes, and the files written.
func (s Summary) writeLines(b *strings.Builder) {
	agent := s.agentStats()
	var total CPU
	var totalAgent wire.CPUStats
	for _, c := range s.CPUs {
		if c.NotStreamed {
			continue
		}
		a := agent[c.CPU]
		totalAgent.Overrun += a.Overrun + a.CommitOverrun
		totalAgent.DroppedEvents += a.DroppedEvents
		total.add(c)
	}
	fmt.Fprintf(b, "saved %s in %s (%s pages) in %v\n", size(total.Bytes), s.Out, size(int64(s.PageSize)), s.Elapsed.Round(time.Millisecond))
	s.writeGone(b)
	s.writeLosses(b, agent, total, totalAgent)
	s.writeTaken(b, agent)
	for _, c := range s.CPUs {
		for _, bad := range c.Bad {
			fmt.Fprintf(b, "WARNING: CPU %d: page %d of %s (offset %d) is corrupt and left out of the counts: %v\n",
				c.CPU, bad.Index, filepath.Base(c.File), bad.Index*int64(s.PageSize), bad.Err)
		}
		if n := c.Stats.CorruptPages - int64(len(c.Bad)); n > 0 {
			fmt.Fprintf(b, "WARNING: CPU %d: %d more corrupt pages in %s\n", c.CPU, n, filepath.Base(c.File))
		}
		if c.NotStreamed {
			fmt.Fprintf(b, "WARNING: CPU %d was not streamed: the agent does not read it (it was offline when the agent started, or left out by its --cpus); what it recorded is not in the capture\n", c.CPU)
		}
	}
	if s.TraceDatBadPages > 0 {
		fmt.Fprintf(b, "trace.dat holds %d empty pages in place of the corrupt ones\n", s.TraceDatBadPages)
	}
	for _, c := range s.CPUs {
		if c.ScanErr != nil {
			fmt.Fprintf(b, "CPU %d: read %s: %v\n", c.CPU, filepath.Base(c.File), c.ScanErr)
		}
	}
	for _, n := range s.Notes {
		fmt.Fprintf(b, "%s\n", n)
	}
	if s.Meta != "" {
		fmt.Fprintf(b, "metadata in %s\n", s.Meta)
	}
	if s.TraceDat != "" {
		fmt.Fprintf(b, "wrote %s: trace-cmd report -i %s\n", s.TraceDat, s.TraceDat)
	}
	s.Timeline.write(b)
}

// Write prints one table of every guest's CPUs (a guest column first),
// then each guest's lines (as Summary.Write prints them) prefixed with its
// name, the spread of the start orders, the notes, and host.dat.
func (ms MultiSummary) Write(w io.Writer) error {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	agentCols := false
	for _, g := range ms.Guests {
		agentCols = agentCols || len(g.AgentStats) > 0
	}
	writeHead(tw, "guest", agentCols)
	for _, g := range ms.Guests {
		if len(g.CPUs) > 0 {
			g.writeRows(tw, g.Name, agentCols)
		}
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	var b strings.Builder
	for _, g := range ms.Guests {
		if len(g.CPUs) == 0 {
			fmt.Fprintf(&b, "%s: WARNING: no capture: %v\n", g.Name, g.Err)
			continue
		}
		var gb strings.Builder
		g.writeLines(&gb)
		for _, line := range strings.SplitAfter(gb.String(), "\n") {
			if line != "" {
				b.WriteString(g.Name + ": " + line)
			}
		}
	}
	if ms.StartsSent > 0 || ms.StartsAnswered > 0 {
		fmt.Fprintf(&b, "start orders: sent within %v of each other, answered within %v (first %s, last %s)\n",
			ms.StartsSent.Round(time.Microsecond), ms.StartsAnswered.Round(time.Microsecond), ms.FirstStarted, ms.LastStarted)
	}
	for _, n := range ms.Notes {
		fmt.Fprintf(&b, "%s\n", n)
	}
	if ms.HostDat != "" {
		fmt.Fprintf(&b, "wrote %s: trace-cmd report -i %s", ms.HostDat, ms.HostDat)
		for _, g := range ms.Guests {
			switch {
			case g.Link != "":
				fmt.Fprintf(&b, " -i %s", g.Link)
			case g.TraceDat != "":
				fmt.Fprintf(&b, " -i %s", g.TraceDat)
			}
		}
		b.WriteString("\n")
	}
	_, err := io.WriteString(w, b.String())
	return err
}

// writeGone says that the guest went away, when and how.
func (s Summary) writeGone(b *strings.Builder) {
	if s.Gone == nil {
		return
	}
	fmt.Fprintf(b, "WARNING: the guest went away at %s: %s; the capture holds what arrived before\n",
		s.Gone.At.Format("15:04:05.000"), s.Gone.Why)
}

// writeLosses says what was lost: the kernel's counters of the recording
// when the agent sent them (exact), else the flagged pages (at least the
// stored counts, plus one event per page flagged without a count).
func (s Summary) writeLosses(b *strings.Builder, agent map[int]wire.CPUStats, total CPU, totalAgent wire.CPUStats) {
	if len(agent) > 0 {
		if lost := totalAgent.Overrun + totalAgent.DroppedEvents; lost > 0 {
			session.WriteLossWarnings(b, s.AgentStats)
			fmt.Fprintf(b, "WARNING: %d events lost in all: the capture is incomplete\n", lost)
		} else if total.Stats.MissedPages > 0 {
			fmt.Fprintf(b, "%d pages are flagged for events the ring buffer lost before this recording (its own counters show no loss)\n", total.Stats.MissedPages)
		}
		return
	}
	if total.Stats.MissedPages == 0 {
		return
	}
	for _, c := range s.CPUs {
		if c.Stats.MissedPages == 0 {
			continue
		}
		if c.Stats.MissedUncounted == 0 {
			fmt.Fprintf(b, "WARNING: %d events lost on CPU %d: the guest's ring buffer overwrote them (%d pages flagged)\n",
				c.Stats.MissedAtLeast(), c.CPU, c.Stats.MissedPages)
			continue
		}
		fmt.Fprintf(b, "WARNING: at least %d events lost on CPU %d: the guest's ring buffer overwrote them (%d pages flagged, %d without a count: the kernel stores one only when the page has room)\n",
			c.Stats.MissedAtLeast(), c.CPU, c.Stats.MissedPages, c.Stats.MissedUncounted)
	}
	if total.Stats.MissedUncounted == 0 {
		fmt.Fprintf(b, "WARNING: %d events lost in all: the capture is incomplete\n", total.Stats.MissedAtLeast())
	} else {
		fmt.Fprintf(b, "WARNING: at least %d events lost in all: the capture is incomplete (the agent sent no counters to tell exactly)\n", total.Stats.MissedAtLeast())
	}
}

// writeTaken compares, per CPU, the events the kernel handed out during
// the recording (the agent's final "read events") with those that arrived:
// the difference went to another reader of the same ring buffer (tracefs
// has no exclusive open of trace_pipe_raw), unless pages were cut or
// refused on the way.
func (s Summary) writeTaken(b *strings.Builder, agent map[int]wire.CPUStats) {
	for _, c := range s.CPUs {
		a, ok := agent[c.CPU]
		if !ok || c.NotStreamed || a.ReadEvents <= uint64(c.Stats.Events) {
			continue
		}
		missing := a.ReadEvents - uint64(c.Stats.Events)
		why := fmt.Sprintf("another reader of the same ring buffer took them (a second reader of per_cpu/cpu%d/trace_pipe_raw in the guest, such as a cat of it, or another agent)", c.CPU)
		if c.Dropped > 0 || c.Stats.CorruptPages > 0 || c.Late || c.ScanErr != nil {
			why = "pages cut or refused on the way (see below) hold some; another reader of the same ring buffer may have taken the rest"
		}
		fmt.Fprintf(b, "WARNING: CPU %d: the kernel handed out %d events, %d arrived: %d are not in the capture: %s\n",
			c.CPU, a.ReadEvents, c.Stats.Events, missing, why)
	}
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
