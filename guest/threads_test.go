package guest_test

import (
	"os"
	"runtime"
	"slices"
	"strconv"
	"testing"
	"time"

	"github.com/vtrace/vtrace/guest"
	"github.com/vtrace/vtrace/internal/sys"
	"github.com/vtrace/vtrace/internal/testutil"
	"golang.org/x/sys/unix"
)

// TestIntegrationCPUThreads: while the agent streams, each CPU goroutine
// waits on a thread bound to its own CPU and scheduled as asked: with the
// short slice where the kernel takes one (Linux 6.12 and later), or under
// SCHED_FIFO with RTPriority; once the agent has ended, those threads are
// bound no more, and no thread of the process keeps that scheduling.
func TestIntegrationCPUThreads(t *testing.T) {
	const short = 100 * time.Microsecond
	honoured := slicesHonoured(t, short)
	for _, tc := range []struct {
		name string
		rt   int
		want func(sys.Sched) bool
	}{
		{"fair", 0, func(s sys.Sched) bool { return s.Fair() && s.ResetOnFork && (s.Slice == short || !honoured) }},
		{"fifo", 7, func(s sys.Sched) bool { return s.Policy == unix.SCHED_FIFO && s.Priority == 7 && s.ResetOnFork }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			inst := testutil.Instance(t, "vtrace-guest-threads")
			cpus := onlineCPUs(t)
			dir := fifoDir(t, cpus)
			h := newHost(t, dir, inst, cpus)
			r := startAgent(t, guest.Config{Tracefs: inst, PortsDir: dir, Latency: 100 * time.Millisecond, RTPriority: tc.rt})
			h.send("1\n")
			m := newMarkers(t, inst)
			m.write("vtrace-latency 1 wake")
			h.waitMarker(1)

			deadline := time.Now().Add(30 * time.Second)
			var polling map[int]int64
			for polling = pollingThreads(t); len(polling) < len(cpus); polling = pollingThreads(t) {
				if time.Now().After(deadline) {
					t.Fatalf("found %d threads waiting in poll(2), want the %d CPU goroutines'", len(polling), len(cpus))
				}
				time.Sleep(10 * time.Millisecond)
			}
			var bound []int
			for tid := range polling {
				on, err := sys.ThreadAffinity(tid)
				if err != nil {
					t.Fatal(err)
				}
				if len(on) != 1 {
					t.Errorf("CPU goroutine's thread %d may run on CPUs %v, want one", tid, on)
					continue
				}
				bound = append(bound, on[0])
				if s, err := sys.ThreadSched(tid); err != nil || !tc.want(s) {
					t.Errorf("thread %d (CPU %d): scheduled %+v (%v)", tid, on[0], s, err)
				}
			}
			slices.Sort(bound)
			if !slices.Equal(bound, cpus) {
				t.Errorf("CPU goroutines' threads bound to CPUs %v, want %v", bound, cpus)
			}

			r.stop()
			<-r.done
			for tid := range polling {
				if on, err := sys.ThreadAffinity(tid); err == nil && !slices.Equal(on, cpus) {
					t.Errorf("after the agent ended, its CPU thread %d may run on CPUs %v, want %v", tid, on, cpus)
				}
			}
			for _, tid := range threads(t) {
				if s, err := sys.ThreadSched(tid); err == nil && (!s.Fair() || s.Slice == short || s.ResetOnFork) {
					t.Errorf("after the agent ended, thread %d keeps the CPU threads' scheduling: %+v", tid, s)
				}
			}
			runtime.KeepAlive(h)
		})
	}
}

// slicesHonoured reports whether the kernel keeps a fair thread's slice
// (Linux 6.12 and later), on a thread of the test's own, put back after.
func slicesHonoured(t *testing.T, slice time.Duration) bool {
	t.Helper()
	got := make(chan time.Duration)
	go func() {
		runtime.LockOSThread()
		defer runtime.UnlockOSThread()
		before, err := sys.ThreadSched(0)
		if err == nil {
			err = sys.SetThreadSched(0, sys.Sched{Policy: unix.SCHED_NORMAL, Slice: slice})
		}
		s, _ := sys.ThreadSched(0)
		before.Slice = 0
		if err == nil {
			err = sys.SetThreadSched(0, before)
		}
		if err != nil {
			t.Error(err)
		}
		got <- s.Slice
	}()
	return <-got == slice
}

// threads lists the process's threads.
func threads(t *testing.T) []int {
	t.Helper()
	tasks, err := os.ReadDir("/proc/self/task")
	if err != nil {
		t.Fatal(err)
	}
	var out []int
	for _, e := range tasks {
		if tid, err := strconv.Atoi(e.Name()); err == nil {
			out = append(out, tid)
		}
	}
	return out
}
