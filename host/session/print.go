package session

import (
	"fmt"
	"io"
	"text/tabwriter"

	"github.com/vtrace/vtrace/proto/wire"
)

// WriteStats prints per-CPU counters as a table, then a WARNING line for
// every CPU that lost events.
func WriteStats(w io.Writer, cpus []wire.CPUStats) error {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintf(tw, "cpu\tentries\tread\toverrun\tcommit overrun\tdropped\tbytes sent\tpages sent\t\n")
	for _, c := range cpus {
		fmt.Fprintf(tw, "%d\t%d\t%d\t%d\t%d\t%d\t%d\t%d\t\n", c.CPU, c.Entries, c.ReadEvents, c.Overrun,
			c.CommitOverrun, c.DroppedEvents, c.BytesSent, c.PagesSent)
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	return WriteLossWarnings(w, cpus)
}

// WriteLossWarnings prints one WARNING line per CPU that lost events.
func WriteLossWarnings(w io.Writer, cpus []wire.CPUStats) error {
	for _, c := range cpus {
		if n := Lost(c); n > 0 {
			if _, err := fmt.Fprintf(w, "WARNING: %d events lost on CPU %d (overrun %d, commit overrun %d, dropped %d): the guest's ring buffer filled up; try a larger --buffer-size\n",
				n, c.CPU, c.Overrun, c.CommitOverrun, c.DroppedEvents); err != nil {
				return err
			}
		}
	}
	return nil
}

// WriteStatus prints what the agent said of itself.
func WriteStatus(w io.Writer, h *wire.HelloReply, st *wire.Status) error {
	instance := h.Instance
	if instance == "" {
		instance = "top-level buffer"
	}
	fmt.Fprintf(w, "agent:    %s (protocol %d)\n", orUnknown(st.AgentVersion, h.AgentVersion), h.Version)
	fmt.Fprintf(w, "kernel:   %s\n", orUnknown(h.Release, ""))
	fmt.Fprintf(w, "CPUs:     %d, pages of %d bytes, clock %s\n", len(h.CPUs), h.PageSize, orUnknown(h.Clock, ""))
	fmt.Fprintf(w, "state:    %v\n", st.State)
	// An idle agent describes its last recording, if it made one.
	last := st.State != wire.StateRecording && (!st.Settings.IsZero() || len(st.CPUs) > 0)
	if last {
		fmt.Fprintf(w, "settings: %s (the last recording)\n", Describe(st.Settings))
	} else {
		fmt.Fprintf(w, "settings: %s\n", Describe(st.Settings))
	}
	fmt.Fprintf(w, "instance: %s (at the handshake)\n", instance)
	if len(st.CPUs) == 0 {
		return nil
	}
	if last {
		fmt.Fprintln(w, "final counters of the last recording:")
	}
	return WriteStats(w, st.CPUs)
}

func orUnknown(a, b string) string {
	switch {
	case a != "":
		return a
	case b != "":
		return b
	}
	return "unknown"
}
