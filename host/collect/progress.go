package collect

import (
	"fmt"
	"strings"
	"time"

	"github.com/vtrace/vtrace/host/session"
	"github.com/vtrace/vtrace/proto/wire"
)

// maxProgressCPUs is the most CPUs the progress line shows one by one.
const maxProgressCPUs = 4

// progress rewrites one line of per-CPU bytes and rates on cfg.Progress
// every cfg.ProgressEvery until stop is closed, then writes the final line
// with a newline. With the agent's live stats (stats returns nil without),
// it adds what each CPU lost. It does nothing when cfg.Progress is nil.
func progress(cfg Config, streams []*stream, stats func() []wire.CPUStats, begin time.Time, stop <-chan struct{}) {
	if cfg.Progress == nil {
		return
	}
	last := make([]int64, len(streams))
	lastAt := begin
	line := func(now time.Time, final bool) string {
		var b strings.Builder
		b.WriteString("\r")
		dt := now.Sub(lastAt).Seconds()
		if final {
			dt = now.Sub(begin).Seconds() // the average over the capture
		}
		rate := func(d int64) string {
			if dt <= 0 {
				return size(0) + "/s"
			}
			return size(int64(float64(d)/dt)) + "/s"
		}
		lost := map[int]wire.CPUStats{}
		for _, c := range stats() {
			lost[int(c.CPU)] = c
		}
		var total, totalDelta int64
		var totalLost uint64
		var cpus []string
		for i, s := range streams {
			n := s.written.Load()
			d := n - last[i]
			if final {
				d = n
			}
			total, totalDelta = total+n, totalDelta+d
			cpu := fmt.Sprintf("cpu%d %s %s", s.cpu, size(n), rate(d))
			if c, ok := lost[s.cpu]; ok {
				cpu += fmt.Sprintf(" (overrun %d dropped %d)", c.Overrun+c.CommitOverrun, c.DroppedEvents)
				totalLost += session.Lost(c)
			}
			cpus = append(cpus, cpu)
			last[i] = n
		}
		fmt.Fprintf(&b, "%s %s", size(total), rate(totalDelta))
		if totalLost > 0 {
			fmt.Fprintf(&b, " LOST %d events", totalLost)
		}
		if len(cpus) <= maxProgressCPUs {
			// Per-CPU numbers only while the line fits a terminal.
			b.WriteString(" | " + strings.Join(cpus, "  "))
		}
		lastAt = now
		b.WriteString("\x1b[K") // clear what a longer earlier line left
		return b.String()
	}
	t := time.NewTicker(cfg.ProgressEvery)
	defer t.Stop()
	for {
		select {
		case now := <-t.C:
			fmt.Fprint(cfg.Progress, line(now, false))
		case <-stop:
			fmt.Fprint(cfg.Progress, line(time.Now(), true)+"\n")
			return
		}
	}
}
