package tracefs

import (
	"bufio"
	"fmt"
	"strconv"
	"strings"
)

// CPUStats are the counters of one per_cpu/cpuN/stats file, as the kernel
// writes it ("overrun: 12" lines; kernel/trace/trace.c, tracing_stats_read).
// Counts are in events, Bytes in bytes; the timestamps are nanoseconds when
// the trace clock counts in seconds with a fraction ("5153.034283"), and
// the clock's own units for counter clocks. A counter the text lacks is 0.
type CPUStats struct {
	Entries       uint64 // events still in the ring buffer
	Overrun       uint64 // events overwritten before they were read
	CommitOverrun uint64 // events lost while a page was being written
	Bytes         uint64 // bytes in the ring buffer
	DroppedEvents uint64 // events the buffer refused (when it does not overwrite)
	ReadEvents    uint64 // events handed out to readers
	OldestEventTS uint64
	NowTS         uint64
}

// MaxStatsLine bounds one line of a per_cpu/cpuN/stats text, in bytes.
const MaxStatsLine = 4096

// ParseCPUStats reads the text of a per_cpu/cpuN/stats file. Lines it does
// not know are skipped; a known counter that is not a decimal number (or a
// time that is neither SECONDS.FRACTION nor a decimal number) is an error
// naming its key, as is a line longer than MaxStatsLine. On error the
// CPUStats are zero.
func ParseCPUStats(text []byte) (CPUStats, error) {
	var st CPUStats
	// The counters by their key in the text, with the parser of each.
	fields := map[string]struct {
		p     *uint64
		parse func(string) (uint64, error)
	}{
		"entries":         {&st.Entries, parseCount},
		"overrun":         {&st.Overrun, parseCount},
		"commit overrun":  {&st.CommitOverrun, parseCount},
		"bytes":           {&st.Bytes, parseCount},
		"dropped events":  {&st.DroppedEvents, parseCount},
		"read events":     {&st.ReadEvents, parseCount},
		"oldest event ts": {&st.OldestEventTS, parseStatsTime},
		"now ts":          {&st.NowTS, parseStatsTime},
	}
	sc := bufio.NewScanner(strings.NewReader(string(text)))
	sc.Buffer(make([]byte, 0, 256), MaxStatsLine)
	for sc.Scan() {
		key, val, ok := strings.Cut(sc.Text(), ":")
		if !ok {
			continue
		}
		key = strings.TrimSpace(key)
		f, ok := fields[key]
		if !ok {
			continue
		}
		v, err := f.parse(strings.TrimSpace(val))
		if err != nil {
			return CPUStats{}, fmt.Errorf("%s: %w", key, err)
		}
		*f.p = v
	}
	if err := sc.Err(); err != nil {
		return CPUStats{}, err
	}
	return st, nil
}

func parseCount(s string) (uint64, error) { return strconv.ParseUint(s, 10, 64) }

// parseStatsTime reads "SECONDS.MICROSECONDS" as nanoseconds, or a plain
// number (a counter clock) as is.
func parseStatsTime(s string) (uint64, error) {
	sec, frac, ok := strings.Cut(s, ".")
	if !ok {
		return strconv.ParseUint(s, 10, 64)
	}
	n, err := strconv.ParseUint(sec, 10, 64)
	if err != nil {
		return 0, err
	}
	if len(frac) == 0 || len(frac) > 9 {
		return 0, fmt.Errorf("time %q: want SECONDS.FRACTION", s)
	}
	f, err := strconv.ParseUint(frac, 10, 64)
	if err != nil {
		return 0, err
	}
	for i := len(frac); i < 9; i++ {
		f *= 10
	}
	if n > (1<<64-1-f)/1e9 {
		return 0, fmt.Errorf("time %q: out of range", s)
	}
	return n*1e9 + f, nil
}
