package stats

import (
	"bufio"
	"bytes"
	"fmt"
	"strconv"
	"strings"
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

// maxCountersLine bounds one line of a stats text.
const maxCountersLine = 4096

// ParseCounters reads the text of per_cpu/cpuN/stats. Lines it does not
// know are skipped; a known counter that is not a decimal number is an
// error, as is a line longer than 4 KiB.
func ParseCounters(text []byte) (Counters, error) {
	var c Counters
	sc := bufio.NewScanner(bytes.NewReader(text))
	sc.Buffer(make([]byte, 0, 256), maxCountersLine)
	for sc.Scan() {
		key, val, ok := strings.Cut(sc.Text(), ":")
		if !ok {
			continue
		}
		var p *uint64
		switch strings.TrimSpace(key) {
		case "entries":
			p = &c.Entries
		case "overrun":
			p = &c.Overrun
		case "commit overrun":
			p = &c.CommitOverrun
		case "dropped events":
			p = &c.DroppedEvents
		case "read events":
			p = &c.ReadEvents
		default:
			continue
		}
		v, err := strconv.ParseUint(strings.TrimSpace(val), 10, 64)
		if err != nil {
			return Counters{}, fmt.Errorf("parse cpu stats: %s: %w", strings.TrimSpace(key), err)
		}
		*p = v
	}
	if err := sc.Err(); err != nil {
		return Counters{}, fmt.Errorf("parse cpu stats: %w", err)
	}
	return c, nil
}
