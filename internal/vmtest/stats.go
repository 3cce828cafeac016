package vmtest

import (
	"bufio"
	"fmt"
	"strconv"
	"strings"
)

// CPUStats is one CPU's per_cpu/cpuN/stats of the guest's ring buffer, as
// the guest prints it ("VTRACE-STATS cpu=N entries=... read_events=...").
type CPUStats struct {
	CPU           int
	Entries       uint64  // events in the buffer, not yet read
	Overrun       uint64  // events lost to overwriting
	CommitOverrun uint64  // events lost while the buffer was being written
	Bytes         uint64  // bytes in the buffer, not yet read
	OldestEventTS float64 // seconds, in the buffer's trace clock
	NowTS         float64 // seconds, in the buffer's trace clock
	DroppedEvents uint64  // events refused while the buffer was full (no overwrite)
	ReadEvents    uint64  // events consumed by readers
}

// ParseStats reads every VTRACE-STATS line of text (other lines are
// skipped) and returns the CPUs in the order found. A stats line missing a
// count, or with one that is not a number, is an error.
func ParseStats(text string) ([]CPUStats, error) {
	var all []CPUStats
	sc := bufio.NewScanner(strings.NewReader(text))
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		rest, ok := strings.CutPrefix(line, "VTRACE-STATS ")
		if !ok {
			continue
		}
		s, err := parseStatsLine(rest)
		if err != nil {
			return nil, fmt.Errorf("parse %q: %w", line, err)
		}
		all = append(all, s)
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("read stats: %w", err)
	}
	return all, nil
}

func parseStatsLine(fields string) (CPUStats, error) {
	var s CPUStats
	counts := map[string]*uint64{
		"entries":        &s.Entries,
		"overrun":        &s.Overrun,
		"commit_overrun": &s.CommitOverrun,
		"bytes":          &s.Bytes,
		"dropped_events": &s.DroppedEvents,
		"read_events":    &s.ReadEvents,
	}
	times := map[string]*float64{"oldest_event_ts": &s.OldestEventTS, "now_ts": &s.NowTS}
	seen := map[string]bool{}
	for _, f := range strings.Fields(fields) {
		k, v, ok := strings.Cut(f, "=")
		if !ok {
			return s, fmt.Errorf("field %q is not key=value", f)
		}
		seen[k] = true
		var err error
		switch {
		case k == "cpu":
			s.CPU, err = strconv.Atoi(v)
		case counts[k] != nil:
			*counts[k], err = strconv.ParseUint(v, 10, 64)
		case times[k] != nil:
			*times[k], err = strconv.ParseFloat(v, 64)
		}
		if err != nil {
			return s, fmt.Errorf("field %s: %w", k, err)
		}
	}
	for _, k := range []string{"cpu", "entries", "overrun", "bytes", "read_events"} {
		if !seen[k] {
			return s, fmt.Errorf("missing field %s", k)
		}
	}
	return s, nil
}

// Stats returns the guest's per_cpu/cpuN/stats of its top-level buffer.
func (g *Guest) Stats() ([]CPUStats, error) { return g.StatsOf("") }

// StatsOf returns the per_cpu stats of ftrace instance name ("" for the
// top-level buffer).
func (g *Guest) StatsOf(instance string) ([]CPUStats, error) {
	args := []string{"stats"}
	if instance != "" {
		args = append(args, instance)
	}
	out, err := g.Command(args...)
	if err != nil {
		return nil, err
	}
	s, err := ParseStats(out)
	if err != nil {
		return nil, err
	}
	if len(s) != g.CPUs {
		return nil, fmt.Errorf("read guest stats: %d CPUs in %q, want %d", len(s), out, g.CPUs)
	}
	return s, nil
}
