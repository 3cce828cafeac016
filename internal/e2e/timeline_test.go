package e2e

import (
	"context"
	"fmt"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/vtrace/vtrace/host/qmp"
	"github.com/vtrace/vtrace/host/timesync"
	"github.com/vtrace/vtrace/host/timesync/timesynctest"
	"github.com/vtrace/vtrace/internal/testutil"
	"github.com/vtrace/vtrace/internal/vmtest"
)

// TestIntegrationMergedTimelineCausality: `vtrace host collect
// --host-events --sync-markers` records a real TCG guest and the host
// together for a minute, with a workload forking and exec'ing in the guest.
// Around every clock probe the host writes a marker into its own trace
// right before sending it and when its answer arrives, and the guest's
// agent writes one into the guest's trace as it reads it. On the merged
// timeline that trace-cmd shows (`trace-cmd report -i host.dat -i
// trace.dat`, not vtrace's reader), every guest marker lies between its
// two host markers, for every probe; in the guest's own clock the marker
// lies between the agent's two readings. host.dat's GUEST option maps each
// vCPU to the qemu thread that runs it (QMP), and `vtrace host stats`
// reports the offset, drift and uncertainty.
func TestIntegrationMergedTimelineCausality(t *testing.T) {
	logDuration(t)
	tc := testutil.NeedProgram(t, "trace-cmd", "trace-cmd")
	g := vmtest.Boot(t, vmtest.Options{CPUs: 2, QMP: true})
	out := filepath.Join(t.TempDir(), "capture")
	const seconds = 61 // the first burst comes at the start and the last at the stop: a minute between them
	c := startCollect(t, g, out, "--start", "--events", "sched:sched_process_exec",
		"--host-events", "sched:sched_process_exec", "--sync-markers", "--qmp", g.QMP,
		"--duration", fmt.Sprintf("%ds", seconds), "--timeout", "30s")
	id, err := g.StartWorkload("spawn", seconds-5, "")
	if err != nil {
		t.Fatal(err)
	}
	c.wait(time.Duration(seconds)*time.Second + 3*time.Minute)
	if c.err != nil {
		t.Fatalf("vtrace host collect: %v\n%s%s", c.err, c.stdout.String(), c.stderr.String())
	}
	t.Logf("vtrace host collect:\n%s%s", c.stdout.String(), c.stderr.String())
	if err := g.WaitWorkload(id, time.Minute); err != nil {
		t.Error(err)
	}

	// The fit, as vtrace saw it.
	rec, err := timesync.Load(out)
	if err != nil {
		t.Fatal(err)
	}
	f := rec.Fit
	if f == nil {
		t.Fatalf("no clock fit: %d probes", len(rec.Probes))
	}
	span := time.Duration(f.Last - f.First)
	if span < time.Minute {
		t.Errorf("the probes span %v, want at least a minute", span)
	}
	if f.Margin < 0 {
		t.Errorf("the fit crosses some probe's bounds by %.0f ns: the guest's clock did not keep a steady rate", -f.Margin)
	}

	// The merged timeline, as trace-cmd shows it.
	host, guest := filepath.Join(out, "host.dat"), filepath.Join(out, "trace.dat")
	probes, lines := timesynctest.Merged(t, tc, host, guest)
	bursts := map[int]bool{}
	for _, p := range rec.Probes {
		bursts[p.Burst] = true
	}
	// A burst every second while recording, each taking what the loaded
	// guest makes it take: at least one every 3 s, whatever the load.
	if len(probes) != len(rec.Probes) || lines != 3*len(rec.Probes) || len(bursts) < seconds/3 {
		t.Errorf("trace-cmd shows %d probes with their three markers (%d marker lines); %d probes in %d bursts were answered",
			len(probes), lines, len(rec.Probes), len(bursts))
	}
	slack, bad := timesynctest.Causality(probes)
	for _, b := range bad {
		t.Errorf("guest marker outside its host markers: %s", b)
	}
	var rtt []int64
	for _, p := range probes {
		rtt = append(rtt, p.Answer-p.Send)
	}
	slices.Sort(rtt)
	t.Logf("%d probes over %v: every guest marker between its host markers (smallest slack %.1f µs); marker round trip min %.1f µs, median %.1f µs, max %.1f µs",
		len(probes), span.Round(time.Millisecond), float64(slack)/1e3, float64(rtt[0])/1e3, float64(rtt[len(rtt)/2])/1e3, float64(rtt[len(rtt)-1])/1e3)
	t.Logf("fit: guest − host %.3f s at the first probe, drift %+.3f ppm (%+.1f µs over the minute), uncertainty ±%.1f µs, margin %.1f µs",
		f.Offset/1e9, f.Drift*1e6, f.Drift*60e6, f.Uncertainty()/1e3, f.Margin/1e3)

	// How steady the offset was: each burst's best probe against the line.
	best := map[int]timesync.Probe{}
	for _, p := range rec.Probes {
		if b, ok := best[p.Burst]; !ok || p.Delay() < b.Delay() {
			best[p.Burst] = p
		}
	}
	var dev float64
	var delays []int64
	tight := 0
	for _, p := range best {
		delays = append(delays, p.Delay())
		if p.Delay() <= 2*f.BestDelay {
			tight++
			dev = max(dev, math.Abs(float64(p.Offset())-f.At((p.GuestReceived+p.GuestSent)/2)))
		}
	}
	slices.Sort(delays)
	t.Logf("%d bursts: best delay per burst min %.1f µs, median %.1f µs, max %.1f µs; the midpoints of the %d bursts whose best delay is within twice the best lie within %.1f µs of the line",
		len(best), float64(delays[0])/1e3, float64(delays[len(delays)/2])/1e3, float64(delays[len(delays)-1])/1e3, tight, dev/1e3)

	// In the guest, the agent's two readings of the clock (clock_gettime)
	// bracket the ring buffer's stamp of the marker written between them:
	// the agent reads the guest's trace clock itself.
	stamps := timesynctest.GuestStamps(t, tc, guest)
	outside := 0
	for _, p := range rec.Probes {
		ts, ok := stamps[p.ID]
		if !ok || ts < p.GuestReceived || ts > p.GuestSent {
			if outside++; outside <= 5 {
				t.Errorf("probe %d: guest marker stamped %d (found %t), the agent read %d and %d", p.ID, ts, ok, p.GuestReceived, p.GuestSent)
			}
		}
	}
	if outside > 0 {
		t.Errorf("%d of %d probes: the guest marker is not between the agent's readings (%d markers read)", outside, len(rec.Probes), len(stamps))
	}

	// host.dat maps each vCPU to qemu's thread for it.
	dump, err := exec.Command(tc, "dump", "--options", "-i", host).CombinedOutput()
	if err != nil {
		t.Fatalf("trace-cmd dump --options: %v\n%s", err, dump)
	}
	vcpus, err := qmp.VCPUThreads(context.Background(), g.QMP)
	if err != nil {
		t.Fatal(err)
	}
	pairs := regexp.MustCompile(`(?m)^\s*(\d+) (\d+) \[guest cpu, host pid\]`).FindAllStringSubmatch(string(dump), -1)
	if len(pairs) != g.CPUs || len(vcpus) != g.CPUs {
		t.Fatalf("GUEST option maps %d vCPUs, qemu has %d, the guest %d:\n%s", len(pairs), len(vcpus), g.CPUs, dump)
	}
	for i, p := range pairs {
		cpu, _ := strconv.Atoi(p[1])
		tid, _ := strconv.Atoi(p[2])
		if cpu != vcpus[i].CPU || tid != vcpus[i].Thread {
			t.Errorf("GUEST option: vCPU %d on thread %d, qemu says vCPU %d on %d", cpu, tid, vcpus[i].CPU, vcpus[i].Thread)
		}
		if comm, err := os.ReadFile(fmt.Sprintf("/proc/%d/task/%d/comm", g.Pid(), tid)); err != nil || !strings.HasPrefix(string(comm), "CPU "+p[1]+"/") {
			t.Errorf("vCPU %d: thread %d is not qemu's vCPU thread (%q, %v)", cpu, tid, comm, err)
		}
	}

	// vtrace host stats reports the fit.
	st := vtrace(t, "host", "stats", out)
	for _, want := range []string{"clock sync: trace clock mono", "drift: ", "uncertainty: ±"} {
		if !strings.Contains(st, want) {
			t.Errorf("vtrace host stats does not say %q:\n%s", want, st)
		}
	}
}
