package guest

import (
	"fmt"
	"io"
	"os"

	"github.com/vtrace/vtrace/proto/tracefs"
	"github.com/vtrace/vtrace/proto/wire"
)

// maxStatsFile bounds what is read of one per_cpu/cpuN/stats (a few
// hundred bytes in practice); the protocol's strings stop at 4 KiB.
const maxStatsFile = wire.MaxString

// ParseCPUStats reads the text of a per_cpu/cpuN/stats file with
// tracefs.ParseCPUStats: times become nanoseconds when the clock counts in
// seconds with a fraction, and stay as they are for counter clocks. Lines
// it does not know are kept only in Raw. Raw is the text itself, clipped to
// what the protocol carries. On error only CPU and Raw are set.
func ParseCPUStats(cpu int, text string) (wire.CPUStats, error) {
	st := wire.CPUStats{CPU: uint32(cpu), Raw: wire.FreeText(text)}
	c, err := tracefs.ParseCPUStats([]byte(text))
	if err != nil {
		return st, fmt.Errorf("parse cpu %d stats: %w", cpu, err)
	}
	st.Entries, st.Overrun, st.CommitOverrun, st.Bytes = c.Entries, c.Overrun, c.CommitOverrun, c.Bytes
	st.DroppedEvents, st.ReadEvents = c.DroppedEvents, c.ReadEvents
	st.OldestEventTS, st.NowTS = c.OldestEventTS, c.NowTS
	return st, nil
}

// readCPUStats reads every CPU's stats file in dir (a tracefs root or
// instance), adding the agent's own counters.
func readCPUStats(dir string, workers []*worker) ([]wire.CPUStats, error) {
	out := make([]wire.CPUStats, 0, len(workers))
	for _, w := range workers {
		path := tracefs.PerCPU(dir, w.cpu, "stats")
		b, err := readSmall(path, maxStatsFile)
		if err != nil {
			return nil, err
		}
		st, err := ParseCPUStats(w.cpu, string(b))
		if err != nil {
			return nil, fmt.Errorf("%s: %w", path, err)
		}
		st.BytesSent = uint64(w.sent.Load())
		st.PagesSent = st.BytesSent / uint64(w.page)
		out = append(out, st)
	}
	return out, nil
}

// readSmall reads at most max bytes of a file whose size stat does not
// tell (tracefs and /proc files say 0).
func readSmall(path string, max int) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, int64(max)+1))
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", path, err)
	}
	if len(b) > max {
		return nil, fmt.Errorf("read %s: over %d bytes", path, max)
	}
	return b, nil
}
