package guest_test

import (
	"fmt"
	"os"
	"os/exec"
	"runtime"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/vtrace/vtrace/guest"
	"github.com/vtrace/vtrace/internal/sys"
	"github.com/vtrace/vtrace/internal/testutil"
	"golang.org/x/sys/unix"
)

// TestIntegrationCPUThreads: while the agent streams, each CPU goroutine
// waits on a thread bound to its own CPU, and every thread of the process
// is scheduled as asked: with the short slice where the kernel takes one
// (Linux 6.12 and later), or under SCHED_FIFO with RTPriority. Once the
// agent has ended, those threads are bound no more and every thread is
// scheduled as before.
func TestIntegrationCPUThreads(t *testing.T) {
	const short = 100 * time.Microsecond
	honoured := slicesHonoured(t, short)
	before, err := sys.ThreadSched(0)
	if err != nil {
		t.Fatal(err)
	}
	before.Slice = 0 // the default, as compared below
	for _, tc := range []struct {
		name string
		rt   int
		want func(sys.Sched) bool
	}{
		{"fair", 0, func(s sys.Sched) bool { return s.Fair() && (s.Slice == short || !honoured) }},
		{"fifo", 7, func(s sys.Sched) bool { return s.Policy == unix.SCHED_FIFO && s.Priority == 7 }},
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
			}
			slices.Sort(bound)
			if !slices.Equal(bound, cpus) {
				t.Errorf("CPU goroutines' threads bound to CPUs %v, want %v", bound, cpus)
			}
			for tid, s := range threadScheds(t) {
				if !tc.want(s) {
					t.Errorf("thread %d scheduled %+v while the agent runs", tid, s)
				}
			}

			r.stop()
			<-r.done
			for tid := range polling {
				if on, err := sys.ThreadAffinity(tid); err == nil && !slices.Equal(on, cpus) {
					t.Errorf("after the agent ended, its CPU thread %d may run on CPUs %v, want %v", tid, on, cpus)
				}
			}
			for tid, s := range threadScheds(t) {
				if s.Fair() {
					s.Slice = 0 // the default, as the kernel reports it
				}
				if s != before {
					t.Errorf("after the agent ended, thread %d is scheduled %+v, want %+v as before", tid, s, before)
				}
			}
			runtime.KeepAlive(h)
		})
	}
}

// threadScheds returns how each thread of the process is scheduled.
func threadScheds(t *testing.T) map[int]sys.Sched {
	t.Helper()
	tids, err := sys.Threads()
	if err != nil {
		t.Fatal(err)
	}
	out := map[int]sys.Sched{}
	for _, tid := range tids {
		if s, err := sys.ThreadSched(tid); err == nil {
			out[tid] = s
		}
	}
	return out
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

// TestRTPriorityRefused: an agent asked for a real-time priority that the
// process may not take fails at New, naming what it needs, before it
// touches tracefs, and leaves every thread as it was. The process here is
// this test binary, run again without CAP_SYS_NICE (setpriv) and with
// RLIMIT_RTPRIO 0.
func TestRTPriorityRefused(t *testing.T) {
	if limit := os.Getenv("VTRACE_TEST_RT_LIMIT"); limit != "" {
		var n uint64
		fmt.Sscan(limit, &n)
		if err := unix.Setrlimit(unix.RLIMIT_RTPRIO, &unix.Rlimit{Cur: n, Max: n}); err != nil {
			t.Fatal(err)
		}
		_, err := guest.New(guest.Config{RTPriority: 5, Tracefs: "/nonexistent"}, nil)
		fmt.Printf("error: %v\n", err)
		for tid, s := range threadScheds(t) {
			if !s.Fair() {
				fmt.Printf("thread %d left %+v\n", tid, s)
			}
		}
		return
	}
	testutil.NeedRoot(t)
	setpriv := testutil.NeedProgram(t, "setpriv", "util-linux")
	child := func(limit string) string {
		cmd := exec.Command(setpriv, "--bounding-set", "-sys_nice", "--inh-caps", "-sys_nice",
			os.Args[0], "-test.run", "^TestRTPriorityRefused$", "-test.count", "1")
		cmd.Env = append(os.Environ(), "VTRACE_TEST_RT_LIMIT="+limit)
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("child with RLIMIT_RTPRIO %s: %v\n%s", limit, err, out)
		}
		if strings.Contains(string(out), " left ") {
			t.Errorf("child with RLIMIT_RTPRIO %s left a thread real-time:\n%s", limit, out)
		}
		return string(out)
	}
	if out := child("0"); !strings.Contains(out, "error: run at real-time priority 5 (it needs CAP_SYS_NICE") {
		t.Errorf("without CAP_SYS_NICE and RLIMIT_RTPRIO: %q, want the real-time priority refused before tracefs is looked at", out)
	}
}

// TestIntegrationSecondAgentOtherScheduling: while one agent of the
// process holds its threads' scheduling, another that asks for a
// real-time priority is refused rather than started without it.
func TestIntegrationSecondAgentOtherScheduling(t *testing.T) {
	inst := testutil.Instance(t, "vtrace-guest-sched")
	cpus := onlineCPUs(t)
	dir := fifoDir(t, cpus)
	newHost(t, dir, inst, cpus)
	startAgent(t, guest.Config{Tracefs: inst, PortsDir: dir})
	_, err := guest.New(guest.Config{RTPriority: 5, Tracefs: "/nonexistent"}, nil)
	if err == nil || !strings.Contains(err.Error(), "another agent of this process holds its threads' scheduling") {
		t.Errorf("second agent at real-time priority 5: %v, want refused", err)
	}
}
