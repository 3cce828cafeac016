package collect

import (
	"fmt"
	"io"
	"strings"
	"sync"
	"time"

	"github.com/vtrace/vtrace/host/session"
	"github.com/vtrace/vtrace/proto/wire"
)

// maxProgressCPUs is the most CPUs the progress line shows one by one.
const maxProgressCPUs = 4

// startProgress rewrites one line per guest of per-CPU bytes and rates on
// w every every, until the returned function is called, which writes the
// final lines (ending in a newline) and returns once they are written.
// With the agent's live stats it adds what each CPU lost. With several
// guests (named) each line starts with the guest's name and the lines are
// rewritten in place with the terminal's cursor-up sequence. It does
// nothing when w is nil.
func startProgress(w io.Writer, every time.Duration, guests []*guestRun, named bool) func() {
	if w == nil {
		return func() {}
	}
	lines := make([]*progressLine, len(guests))
	for i, g := range guests {
		lines[i] = &progressLine{g: g, last: make([]int64, len(g.streams)), lastAt: time.Now()}
		if named {
			lines[i].name = g.name
		}
	}
	print := func(now time.Time, final bool) {
		var b strings.Builder
		for i, l := range lines {
			if i > 0 {
				b.WriteString("\n")
			}
			b.WriteString("\r" + l.line(now, final) + "\x1b[K") // clear what a longer earlier line left
		}
		if final {
			b.WriteString("\n")
		} else if len(lines) > 1 {
			fmt.Fprintf(&b, "\x1b[%dA", len(lines)-1) // back to the first line
		}
		io.WriteString(w, b.String())
	}
	stop := make(chan struct{})
	var done sync.WaitGroup
	done.Add(1)
	go func() {
		defer done.Done()
		t := time.NewTicker(every)
		defer t.Stop()
		for {
			select {
			case now := <-t.C:
				print(now, false)
			case <-stop:
				print(time.Now(), true)
				return
			}
		}
	}()
	return func() {
		close(stop)
		done.Wait()
	}
}

// progressLine is one guest's line.
type progressLine struct {
	g      *guestRun
	name   string
	last   []int64
	lastAt time.Time
}

// line is the guest's bytes and rates since the last line (the average
// over the capture when final).
func (p *progressLine) line(now time.Time, final bool) string {
	var b strings.Builder
	if p.name != "" {
		b.WriteString(p.name + ": ")
	}
	dt := now.Sub(p.lastAt).Seconds()
	if final {
		dt = now.Sub(p.g.begin).Seconds()
	}
	rate := func(d int64) string {
		if dt <= 0 {
			return size(0) + "/s"
		}
		return size(int64(float64(d)/dt)) + "/s"
	}
	lost := map[int]wire.CPUStats{}
	for _, c := range p.g.ag.liveStats() {
		lost[int(c.CPU)] = c
	}
	var total, totalDelta int64
	var totalLost uint64
	var cpus []string
	for i, s := range p.g.streams {
		n := s.written.Load()
		d := n - p.last[i]
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
		p.last[i] = n
	}
	fmt.Fprintf(&b, "%s %s", size(total), rate(totalDelta))
	if totalLost > 0 {
		fmt.Fprintf(&b, " LOST %d events", totalLost)
	}
	if p.g.c.life.isGone() {
		b.WriteString(" GONE")
	}
	if len(cpus) <= maxProgressCPUs {
		// Per-CPU numbers only while the line fits a terminal.
		b.WriteString(" | " + strings.Join(cpus, "  "))
	}
	p.lastAt = now
	return b.String()
}
