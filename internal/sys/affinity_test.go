package sys

import (
	"fmt"
	"runtime"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

func restore(cpus []int) error {
	var set unix.CPUSet
	for _, c := range cpus {
		set.Set(c)
	}
	return unix.SchedSetaffinity(0, &set)
}

func TestAffinity(t *testing.T) {
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	before, err := Affinity()
	if err != nil || len(before) == 0 {
		t.Fatalf("affinity %v, %v", before, err)
	}
	cpu := before[len(before)-1]
	if err := SetAffinity(cpu); err != nil {
		t.Fatal(err)
	}
	after, err := Affinity()
	if err != nil || len(after) != 1 || after[0] != cpu {
		t.Fatalf("after SetAffinity(%d): %v, %v", cpu, after, err)
	}
	// Give the thread back its CPUs before it returns to the pool.
	if err := restore(before); err != nil {
		t.Fatal(err)
	}
}

// slicesHonoured reports whether the running kernel reads a fair thread's
// slice from sched_attr (Linux 6.12 and later).
func slicesHonoured(t *testing.T) bool {
	t.Helper()
	rel, err := Release()
	if err != nil {
		t.Fatal(err)
	}
	var major, minor int
	if _, err := fmt.Sscanf(rel, "%d.%d", &major, &minor); err != nil {
		t.Fatalf("kernel release %q: %v", rel, err)
	}
	return major > 6 || major == 6 && minor >= 12
}

// TestThreadSlice: the slice set is the slice the kernel reports (from
// Linux 6.12 on; before, none is reported), 0 gives the default back, and
// the thread keeps its policy and nice value throughout.
func TestThreadSlice(t *testing.T) {
	runtime.LockOSThread() // never unlocked: the thread dies with its settings
	tid := ThreadID()
	if err := unix.SchedSetAttr(0, &unix.SchedAttr{Size: unix.SizeofSchedAttr, Policy: unix.SCHED_BATCH, Nice: 3}, 0); err != nil {
		t.Fatal(err)
	}
	check := func(want func(time.Duration) bool, what string) {
		t.Helper()
		a, err := unix.SchedGetAttr(tid, 0)
		if err != nil {
			t.Fatal(err)
		}
		if a.Policy != unix.SCHED_BATCH || a.Nice != 3 {
			t.Errorf("policy %d nice %d, want SCHED_BATCH (%d) and 3 kept", a.Policy, a.Nice, unix.SCHED_BATCH)
		}
		got, err := ThreadSlice(tid)
		if err != nil || !want(got) {
			t.Errorf("slice %v (%v), want %s", got, err, what)
		}
	}
	const short = 100 * time.Microsecond
	honoured := slicesHonoured(t)
	if err := SetThreadSlice(tid, short); err != nil {
		t.Fatal(err)
	}
	if honoured {
		check(func(d time.Duration) bool { return d == short }, "100µs")
	} else {
		check(func(d time.Duration) bool { return d == 0 }, "none reported before Linux 6.12")
	}
	if err := SetThreadSlice(0, 0); err != nil {
		t.Fatal(err)
	}
	check(func(d time.Duration) bool { return d != short && (d > 0) == honoured }, "the default")
}
