package sys

import (
	"os"
	"time"

	"golang.org/x/sys/unix"
)

// SetAffinity binds the calling OS thread to cpu. Unless the goroutine is
// locked to its thread (runtime.LockOSThread), that is whatever thread it
// runs on now (see ThreadID).
func SetAffinity(cpu int) error {
	var set unix.CPUSet
	set.Zero()
	set.Set(cpu)
	if err := unix.SchedSetaffinity(0, &set); err != nil {
		return os.NewSyscallError("sched_setaffinity", err)
	}
	return nil
}

// SetThreadAffinity lets the thread tid of this process run on cpus.
func SetThreadAffinity(tid int, cpus []int) error {
	var set unix.CPUSet
	set.Zero()
	for _, c := range cpus {
		set.Set(c)
	}
	if err := unix.SchedSetaffinity(tid, &set); err != nil {
		return os.NewSyscallError("sched_setaffinity", err)
	}
	return nil
}

// ThreadID is the calling OS thread's id (gettid(2)): a goroutine that is
// not locked to its thread may find another one after it was scheduled.
func ThreadID() int { return unix.Gettid() }

// Affinity returns the CPUs the calling thread may run on.
func Affinity() ([]int, error) {
	var set unix.CPUSet
	if err := unix.SchedGetaffinity(0, &set); err != nil {
		return nil, os.NewSyscallError("sched_getaffinity", err)
	}
	var cpus []int
	for i := 0; i < len(set)*64; i++ {
		if set.IsSet(i) {
			cpus = append(cpus, i)
		}
	}
	return cpus, nil
}

// SetThreadSlice asks the fair scheduler for a time slice of slice for the
// thread tid of this process (0: the calling thread), keeping its policy,
// nice value and reset-on-fork flag; 0 gives back the default slice
// (kernel.sched_base_slice_ns). A thread under another policy than
// SCHED_OTHER or SCHED_BATCH (chrt) is left alone.
//
// The slice is sched_attr.sched_runtime, which EEVDF reads for fair
// threads from Linux 6.12 on (commit "sched/eevdf: Use
// sched_attr::sched_runtime to set request/slice suggestion"), clamped to
// 0.1–100 ms: a thread with a short slice gets an early deadline, so its
// wake-up preempts a thread with the default slice. It does not change the
// thread's share of the CPU. Older kernels take the call and ignore the
// field, which they read for SCHED_DEADLINE only (sched_setattr(2)).
func SetThreadSlice(tid int, slice time.Duration) error {
	a, err := unix.SchedGetAttr(tid, 0)
	if err != nil {
		return os.NewSyscallError("sched_getattr", err)
	}
	if a.Policy != unix.SCHED_NORMAL && a.Policy != unix.SCHED_BATCH {
		return nil
	}
	set := unix.SchedAttr{
		Size:    unix.SizeofSchedAttr,
		Policy:  a.Policy,
		Flags:   a.Flags & unix.SCHED_FLAG_RESET_ON_FORK,
		Nice:    a.Nice,
		Runtime: uint64(max(slice, 0)),
	}
	if err := unix.SchedSetAttr(tid, &set, 0); err != nil {
		return os.NewSyscallError("sched_setattr", err)
	}
	return nil
}

// ThreadSlice is the thread tid's time slice as sched_getattr(2) reports
// it: for a fair thread from Linux 6.12 on, its slice (the default one
// unless set); before, 0.
func ThreadSlice(tid int) (time.Duration, error) {
	a, err := unix.SchedGetAttr(tid, 0)
	if err != nil {
		return 0, os.NewSyscallError("sched_getattr", err)
	}
	return time.Duration(a.Runtime), nil
}
