package timesync

import (
	"errors"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// clocks simulates a guest clock running at (1+drift) times the host's,
// offset by offset at host time 0, and probes through a channel whose
// one-way delays are random (the minimum plus an exponential tail, and now
// and then a long stall in either direction).
type clocks struct {
	offset float64 // guest − host at host time 0, ns
	drift  float64
	rng    *rand.Rand
}

func (c clocks) guest(host float64) int64 { return int64(host*(1+c.drift) + c.offset) }

func (c clocks) delay(min float64) float64 {
	d := min + c.rng.ExpFloat64()*min
	if c.rng.IntN(10) == 0 {
		d += 50 * min
	}
	return d
}

// burst probes n times from host time at, one probe after another.
func (c clocks) burst(at float64, n, burst int) ([]Probe, float64) {
	var out []Probe
	for i := range n {
		t1 := at
		recv := t1 + c.delay(40e3) // the way in is slower, as into a TCG guest
		sent := recv + 5e3 + c.rng.Float64()*5e3
		t4 := sent + c.delay(15e3)
		out = append(out, Probe{ID: uint64(burst*n + i), Burst: burst, HostSent: int64(t1), GuestReceived: c.guest(recv),
			GuestSent: c.guest(sent), HostReceived: int64(t4)})
		at = t4 + 1e3
	}
	return out, at
}

func (c clocks) truth(g int64) float64 {
	// guest − host at guest time g: host = (g − offset)/(1+drift).
	return float64(g) - (float64(g)-c.offset)/(1+c.drift)
}

// TestSolveRecoversOffsetAndDrift: a minute of bursts every second; the
// fit keeps every probe's causality (margin ≥ 0), is within each burst's
// best delay of the true offset, and finds the drift to within what the
// delays allow over the span.
func TestSolveRecoversOffsetAndDrift(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		offset, drift float64
	}{{3.7e12, 120e-6}, {-2e11, -35e-6}, {5e6, 0}, {1e9, 2e-3}} {
		c := clocks{offset: tc.offset, drift: tc.drift, rng: rand.New(rand.NewPCG(1, uint64(tc.offset)))}
		var probes []Probe
		at := 1000e9
		for b := range 61 {
			ps, _ := c.burst(at+float64(b)*1e9, 16, b)
			probes = append(probes, ps...)
		}
		f, err := Solve(probes)
		if err != nil {
			t.Fatal(err)
		}
		if f.Margin < 0 {
			t.Errorf("offset %g drift %g: margin %g ns, some probe's bounds crossed", tc.offset, tc.drift, f.Margin)
		}
		best := map[int]int64{}
		for _, p := range probes {
			if d, ok := best[p.Burst]; !ok || p.Delay() < d {
				best[p.Burst] = p.Delay()
			}
		}
		worst := 0.0
		for _, p := range probes {
			e := math.Abs(f.At(p.GuestReceived) - c.truth(p.GuestReceived))
			worst = math.Max(worst, e)
			if e > float64(best[p.Burst]) {
				t.Errorf("offset %g drift %g: at probe %d off by %.0f ns, more than its burst's best delay %d", tc.offset, tc.drift, p.ID, e, best[p.Burst])
				break
			}
		}
		span := float64(f.Last - f.First)
		if e := math.Abs(f.Drift - tc.drift); e > 2*float64(f.BestDelay)*10/span {
			t.Errorf("drift %g, want %g", f.Drift, tc.drift)
		}
		if f.Uncertainty() != float64(f.BestDelay)/2 || f.BestDelay < 55e3*0.9 {
			t.Errorf("uncertainty %g of best delay %d", f.Uncertainty(), f.BestDelay)
		}
		t.Logf("offset %g drift %g: fit drift %.3g, margin %.0f ns, best delay %d ns, worst error %.0f ns",
			tc.offset, tc.drift, f.Drift, f.Margin, f.BestDelay, worst)
	}
}

// TestSolveOneBurst: over less than MinDriftSpan there is no drift to fit.
func TestSolveOneBurst(t *testing.T) {
	t.Parallel()
	c := clocks{offset: 7e9, drift: 1e-3, rng: rand.New(rand.NewPCG(2, 2))}
	probes, _ := c.burst(50e9, 16, 0)
	f, err := Solve(probes)
	if err != nil {
		t.Fatal(err)
	}
	if f.Drift != 0 || f.Margin < 0 || math.Abs(f.At(f.Ref)-c.truth(f.Ref)) > float64(f.BestDelay) {
		t.Errorf("one burst: %+v (truth %g)", f, c.truth(f.Ref))
	}
	if _, err := Solve(nil); !errors.Is(err, ErrNoProbes) {
		t.Errorf("Solve(nil) = %v", err)
	}
}

func TestProbeCheck(t *testing.T) {
	t.Parallel()
	good := Probe{HostSent: 10, GuestReceived: 100, GuestSent: 105, HostReceived: 20}
	if err := good.Check(); err != nil {
		t.Fatal(err)
	}
	if good.Delay() != 5 || good.Offset() != (90+85)/2 {
		t.Errorf("delay %d offset %d", good.Delay(), good.Offset())
	}
	for _, p := range []Probe{
		{HostSent: 0, GuestReceived: 1, GuestSent: 1, HostReceived: 1},
		{HostSent: 10, GuestReceived: 100, GuestSent: 99, HostReceived: 20},
		{HostSent: 10, GuestReceived: 100, GuestSent: 105, HostReceived: 9},
		{HostSent: 10, GuestReceived: 100, GuestSent: 120, HostReceived: 20},
	} {
		if p.Check() == nil {
			t.Errorf("%+v passes Check", p)
		}
		if _, err := Solve([]Probe{good, p}); err == nil {
			t.Errorf("Solve with %+v: no error", p)
		}
	}
}

// TestPoints: the line sampled every step from the first probe to the
// last, each point's shift the fit's host − guest.
func TestPoints(t *testing.T) {
	t.Parallel()
	f := Fit{Ref: 1000, Offset: 500, Drift: 1e-4, First: 1000, Last: 1000 + 25e9}
	ps := f.Points(10e9)
	if len(ps) != 4 || ps[0].Guest != f.First || ps[3].Guest != f.Last || ps[1].Guest-ps[0].Guest != 10e9 {
		t.Fatalf("points %+v", ps)
	}
	for _, p := range ps {
		if want := -int64(math.Round(f.At(p.Guest))); p.Shift != want || f.HostTime(p.Guest) != p.Guest+p.Shift {
			t.Errorf("point %+v, want shift %d", p, want)
		}
	}
	one := Fit{Ref: 5, Offset: -7, First: 5, Last: 5}
	if ps := one.Points(0); len(ps) != 1 || ps[0] != (Point{5, 7}) {
		t.Errorf("one point: %+v", ps)
	}
}

func TestRecordSaveLoad(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	probes := []Probe{{ID: 1, HostSent: 10, GuestReceived: 100, GuestSent: 105, HostReceived: 20}}
	f, _ := Solve(probes)
	r := &Record{Clock: "mono", HostTraceID: 1, GuestTraceID: 2, Guest: "vm", VCPUs: []VCPU{{0, 41}, {1, 42}}, Probes: probes, Fit: &f}
	if err := r.Save(dir); err != nil {
		t.Fatal(err)
	}
	got, err := Load(dir)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(r, got); diff != "" {
		t.Errorf("loaded (-saved +loaded):\n%s", diff)
	}
	if _, err := Load(t.TempDir()); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("Load of a capture without a record: %v", err)
	}
	for name, text := range map[string]string{
		"bad probe":   `{"probes":[{"host_sent":10,"guest_received":100,"guest_sent":99,"host_received":20}],"fit":{}}`,
		"no fit":      `{"probes":[{"host_sent":10,"guest_received":100,"guest_sent":105,"host_received":20}]}`,
		"not json":    `{"probes":`,
		"wrong types": `{"clock":5}`,
	} {
		d := t.TempDir()
		os.WriteFile(filepath.Join(d, FileName), []byte(text), 0o644)
		if _, err := Load(d); err == nil {
			t.Errorf("%s: Load accepted %s", name, text)
		}
	}
}

func TestRecordWrite(t *testing.T) {
	t.Parallel()
	c := clocks{offset: 2e9, drift: 10e-6, rng: rand.New(rand.NewPCG(3, 3))}
	var probes []Probe
	for b := range 3 {
		ps, _ := c.burst(100e9+float64(b)*1e9, 4, b)
		probes = append(probes, ps...)
	}
	f, _ := Solve(probes)
	var sb strings.Builder
	if err := (&Record{Clock: "mono", Probes: probes, Fit: &f}).Write(&sb); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"trace clock mono, 12 probes in 3 bursts", "drift: +", "uncertainty: ±", "every probe's bounds hold"} {
		if !strings.Contains(sb.String(), want) {
			t.Errorf("summary lacks %q:\n%s", want, sb.String())
		}
	}
	sb.Reset()
	(&Record{Clock: "boot"}).Write(&sb)
	if !strings.Contains(sb.String(), "no offset") {
		t.Errorf("summary without a fit: %q", sb.String())
	}
}
