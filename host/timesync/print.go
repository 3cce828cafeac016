package timesync

import (
	"fmt"
	"io"
	"slices"
	"time"
)

// Write prints the record for people: the clock, the probes, and the fit
// (offset, drift, uncertainty and margin), with the spread of each
// burst's best delay, which says how steady the control port was.
func (r *Record) Write(w io.Writer) error {
	bursts := map[int]int64{}
	for _, p := range r.Probes {
		if d, ok := bursts[p.Burst]; !ok || p.Delay() < d {
			bursts[p.Burst] = p.Delay()
		}
	}
	best := make([]int64, 0, len(bursts))
	for _, d := range bursts {
		best = append(best, d)
	}
	slices.Sort(best)
	f := r.Fit
	if f == nil {
		_, err := fmt.Fprintf(w, "clock sync: trace clock %s, no probe answered: no offset\n", r.Clock)
		return err
	}
	us := func(ns float64) string { return fmt.Sprintf("%.1f µs", ns/1e3) }
	margin := "every probe's bounds hold"
	if f.Margin < 0 {
		margin = "some probe's bounds are crossed: the clocks did not keep a steady rate"
	}
	_, err := fmt.Fprintf(w, `clock sync: trace clock %s, %d probes in %d bursts over %v
  offset (guest − host) at the first probe: %s
  drift: %+.3f ppm (%+.1f µs a minute)
  uncertainty: ±%s (half the best round trip, %s)
  margin: %s (%s)
  best round trip per burst: min %s, median %s, max %s
`, r.Clock, len(r.Probes), len(bursts), time.Duration(f.Last-f.First).Round(time.Millisecond),
		time.Duration(int64(f.Offset)), f.Drift*1e6, f.Drift*60e6,
		us(f.Uncertainty()), us(float64(f.BestDelay)), us(f.Margin), margin,
		us(float64(best[0])), us(float64(best[len(best)/2])), us(float64(best[len(best)-1])))
	return err
}
