package sys

import (
	"fmt"
	"os"
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

// TestThreadSched: a fair thread's slice set is the slice the kernel
// reports (from Linux 6.12 on; before, none is reported) and 0 gives the
// default back, with the policy, nice value and reset-on-fork flag kept;
// SCHED_FIFO and back to the fair policy (as root) work the same way.
func TestThreadSched(t *testing.T) {
	if os.Geteuid() != 0 { // as testutil.NeedRoot, which imports this package
		if os.Getenv("CI") == "true" {
			t.Fatal("root is missing (CI=true forbids skipping): SCHED_FIFO, and clearing reset-on-fork")
		}
		t.Skip("needs root: SCHED_FIFO, and clearing reset-on-fork")
	}
	runtime.LockOSThread() // never unlocked: the thread dies with its settings
	tid := ThreadID()
	const short = 100 * time.Microsecond
	honoured := slicesHonoured(t)
	set := func(s Sched) {
		t.Helper()
		if err := SetThreadSched(tid, s); err != nil {
			t.Fatalf("set %+v: %v", s, err)
		}
		got, err := ThreadSched(0)
		if err != nil {
			t.Fatal(err)
		}
		want := s
		switch {
		case !s.Fair():
		case s.Slice != 0 && honoured:
		case honoured:
			if got.Slice == 0 || got.Slice == short {
				t.Errorf("slice %v after asking for the default, want the default", got.Slice)
			}
			want.Slice = got.Slice
		default:
			want.Slice = 0 // not reported before Linux 6.12
		}
		if got != want {
			t.Errorf("set %+v: got %+v, want %+v", s, got, want)
		}
	}
	batch := Sched{Policy: unix.SCHED_BATCH, Nice: 3}
	set(batch)
	set(Sched{Policy: unix.SCHED_BATCH, Nice: 3, Slice: short, ResetOnFork: true})
	set(batch)
	set(Sched{Policy: unix.SCHED_FIFO, Priority: 1, ResetOnFork: true})
	set(Sched{Policy: unix.SCHED_NORMAL})
	if !(Sched{Policy: unix.SCHED_NORMAL}).Fair() || (Sched{Policy: unix.SCHED_FIFO, Priority: 1}).Fair() {
		t.Error("Fair: want SCHED_NORMAL fair and SCHED_FIFO not")
	}
}
