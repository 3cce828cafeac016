// Package timesync places a guest's trace on its host's timeline: from
// clock probes (four readings of one trace clock each, two on each side:
// docs/protocol.md, "Clock probes") it fits the offset between the
// guest's clock and the host's and its drift, and gives the points that
// trace.dat's TIME_SHIFT option carries. It is pure: numbers in, numbers
// out, and the JSON record a capture keeps (OUT/clock.json).
//
// The fit. Nothing arrives before it was sent, so probe k bounds the
// offset θ = guest − host at two guest times: θ(GuestReceived) ≤
// GuestReceived − HostSent and θ(GuestSent) ≥ GuestSent − HostReceived.
// Solve finds the line θ(g) = Offset + Drift·(g − Ref) that stays inside
// every bound with the largest margin: the tightest probes decide, loose
// ones (a probe that waited behind other traffic) cannot pull it off, and
// when the margin is positive every probe's causality holds on the merged
// timeline. The uncertainty quoted is half the shortest delay, the width
// of the narrowest bound.
package timesync

import (
	"errors"
	"fmt"
	"math"
	"slices"
)

// Probe is one answered clock probe, readings in nanoseconds of the trace
// clock: the host's just before the probe was written and just after the
// reply was read, the guest's as the probe came in and before its reply.
type Probe struct {
	ID            uint64 `json:"id"`
	Burst         int    `json:"burst"` // which burst of probes it was sent in, from 0
	HostSent      int64  `json:"host_sent"`
	GuestReceived int64  `json:"guest_received"`
	GuestSent     int64  `json:"guest_sent"`
	HostReceived  int64  `json:"host_received"`
}

// Delay is the time the probe and its reply spent between host and
// guest: the round trip less the guest's time between its readings.
func (p Probe) Delay() int64 {
	return (p.HostReceived - p.HostSent) - (p.GuestSent - p.GuestReceived)
}

// Offset is the probe's midpoint estimate of guest − host; the true value
// is within Delay()/2 of it.
func (p Probe) Offset() int64 {
	return ((p.GuestReceived - p.HostSent) + (p.GuestSent - p.HostReceived)) / 2
}

// Check says what is wrong with p's readings, if anything: they must be
// positive, each side's in order, and the round trip at least as long as
// the guest's part of it.
func (p Probe) Check() error {
	switch {
	case p.HostSent <= 0 || p.GuestReceived <= 0:
		return fmt.Errorf("probe %d: readings not positive", p.ID)
	case p.HostReceived < p.HostSent || p.GuestSent < p.GuestReceived:
		return fmt.Errorf("probe %d: readings out of order", p.ID)
	case p.Delay() < 0:
		return fmt.Errorf("probe %d: the guest took %d ns of a %d ns round trip: its trace clock ticks coarser than the round trip "+
			"(a guest clocksource of jiffies, as without ACPI: see /sys/devices/system/clocksource/clocksource0/current_clocksource in the guest)",
			p.ID, p.GuestSent-p.GuestReceived, p.HostReceived-p.HostSent)
	}
	return nil
}

// Fit is the line through a capture's probes.
type Fit struct {
	Ref       int64   `json:"ref"`        // guest time (ns) the line is anchored at: the first probe's receipt
	Offset    float64 `json:"offset"`     // guest − host at Ref, ns
	Drift     float64 `json:"drift"`      // change of guest − host per ns of guest time (ppm: ×1e6)
	Margin    float64 `json:"margin"`     // the line's smallest distance inside a probe's bound, ns; negative: some bound is crossed
	BestDelay int64   `json:"best_delay"` // the shortest probe delay, ns
	Probes    int     `json:"probes"`
	First     int64   `json:"first"` // guest time of the first probe's receipt
	Last      int64   `json:"last"`  // guest time of the last probe's reply
}

// MinDriftSpan is the shortest stretch of guest time over which Solve
// fits a drift: over less, the bounds say little about it and Drift is 0.
const MinDriftSpan = 1e9

// maxDrift bounds the drift searched: 5%, far beyond any clock's.
const maxDrift = 0.05

// ErrNoProbes: there is nothing to fit.
var ErrNoProbes = errors.New("no clock probes")

// Solve fits the line to probes (every one must pass Check).
func Solve(probes []Probe) (Fit, error) {
	if len(probes) == 0 {
		return Fit{}, ErrNoProbes
	}
	f := Fit{Probes: len(probes), BestDelay: math.MaxInt64, First: math.MaxInt64, Last: math.MinInt64}
	for _, p := range probes {
		if err := p.Check(); err != nil {
			return Fit{}, err
		}
		f.BestDelay = min(f.BestDelay, p.Delay())
		f.First = min(f.First, p.GuestReceived)
		f.Last = max(f.Last, p.GuestSent)
	}
	f.Ref = f.First
	b := bounds(probes, f.Ref)
	drift := 0.0
	if float64(f.Last-f.First) >= MinDriftSpan {
		// margin(drift) is concave (a minimum of lines minus a maximum
		// of lines): a ternary search finds its top.
		lo, hi := -maxDrift, maxDrift
		for range 200 {
			m1, m2 := lo+(hi-lo)/3, hi-(hi-lo)/3
			if b.margin(m1) < b.margin(m2) {
				lo = m1
			} else {
				hi = m2
			}
		}
		drift = (lo + hi) / 2
	}
	f.Drift = drift
	f.Offset, f.Margin = b.place(drift)
	return f, nil
}

// boundSet is every probe's two bounds, times relative to the reference.
type boundSet struct {
	upperAt, upper []float64 // θ(upperAt[k]) ≤ upper[k]
	lowerAt, lower []float64 // θ(lowerAt[k]) ≥ lower[k]
}

func bounds(probes []Probe, ref int64) boundSet {
	var b boundSet
	for _, p := range probes {
		b.upperAt = append(b.upperAt, float64(p.GuestReceived-ref))
		b.upper = append(b.upper, float64(p.GuestReceived-p.HostSent))
		b.lowerAt = append(b.lowerAt, float64(p.GuestSent-ref))
		b.lower = append(b.lower, float64(p.GuestSent-p.HostReceived))
	}
	return b
}

// place returns the offset at the reference that centres a line of the
// given drift between the bounds, and its margin.
func (b boundSet) place(drift float64) (offset, margin float64) {
	hi, lo := math.Inf(1), math.Inf(-1)
	for k := range b.upper {
		hi = math.Min(hi, b.upper[k]-drift*b.upperAt[k])
		lo = math.Max(lo, b.lower[k]-drift*b.lowerAt[k])
	}
	return (hi + lo) / 2, (hi - lo) / 2
}

func (b boundSet) margin(drift float64) float64 {
	_, m := b.place(drift)
	return m
}

// At is guest − host at guest time g, ns.
func (f Fit) At(g int64) float64 { return f.Offset + f.Drift*float64(g-f.Ref) }

// HostTime is the host's clock reading at the guest's reading g.
func (f Fit) HostTime(g int64) int64 { return g - int64(math.Round(f.At(g))) }

// Uncertainty is half the shortest delay, ns: how far the best probe
// leaves the offset open.
func (f Fit) Uncertainty() float64 { return float64(f.BestDelay) / 2 }

// Point is one sample of trace.dat's TIME_SHIFT: at guest time Guest, the
// host's time is the guest's plus Shift.
type Point struct {
	Guest int64
	Shift int64 // host − guest, ns
}

// Points samples the line every step of guest time from the first probe
// to the last (both included; one point when they coincide). trace-cmd
// interpolates between neighbouring points and extends the first and last
// pair beyond them; short steps keep its integer arithmetic (time since
// the point × change of shift) far from overflow.
func (f Fit) Points(step int64) []Point {
	if step <= 0 {
		step = DefaultStep
	}
	var out []Point
	add := func(g int64) {
		out = append(out, Point{Guest: g, Shift: -int64(math.Round(f.At(g)))})
	}
	for g := f.First; g < f.Last; g += step {
		add(g)
	}
	if len(out) == 0 || out[len(out)-1].Guest != f.Last {
		add(f.Last)
	}
	return slices.Clip(out)
}

// DefaultStep is the spacing of Points: 10 s of guest time.
const DefaultStep = 10e9
