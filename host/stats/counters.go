package stats

import (
	"fmt"

	"github.com/vtrace/vtrace/proto/tracefs"
)

// Counters are the kernel's per-CPU ring-buffer counters of a capture's
// recording, as saved in meta/cpustats/cpuN (the text of
// per_cpu/cpuN/stats: "overrun: 12" lines). A counter the text lacks is 0.
type Counters struct {
	Entries       uint64 // events still in the ring buffer
	Overrun       uint64 // events overwritten before they were read
	CommitOverrun uint64 // events lost while a page was being written
	DroppedEvents uint64 // events the buffer refused (when it does not overwrite)
	ReadEvents    uint64 // events handed out to readers
}

// Lost is what the counters say was lost: overwritten, lost in a commit,
// or dropped.
func (c Counters) Lost() uint64 { return c.Overrun + c.CommitOverrun + c.DroppedEvents }

// ParseCounters reads the text of per_cpu/cpuN/stats with
// tracefs.ParseCPUStats. Lines it does not know are skipped; a known
// counter that is not a decimal number (or a time that is not one) is an
// error, as is a line longer than 4 KiB.
func ParseCounters(text []byte) (Counters, error) {
	c, err := tracefs.ParseCPUStats(text)
	if err != nil {
		return Counters{}, fmt.Errorf("parse cpu stats: %w", err)
	}
	return Counters{Entries: c.Entries, Overrun: c.Overrun, CommitOverrun: c.CommitOverrun,
		DroppedEvents: c.DroppedEvents, ReadEvents: c.ReadEvents}, nil
}
