package sys

import (
	"os"
	"strconv"
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
func Affinity() ([]int, error) { return ThreadAffinity(0) }

// Sched is how the kernel schedules a thread (sched_setattr(2)).
type Sched struct {
	Policy   uint32 // unix.SCHED_NORMAL, SCHED_BATCH, SCHED_FIFO, ...
	Nice     int32  // the fair policies' (SCHED_NORMAL, SCHED_BATCH) nice value
	Priority uint32 // SCHED_FIFO's and SCHED_RR's priority, 1-99
	// Slice is a fair thread's time slice (0: the default,
	// /sys/kernel/debug/sched/base_slice_ns). EEVDF reads it from
	// sched_attr.sched_runtime from Linux 6.12 on (commit "sched/eevdf:
	// Use sched_attr::sched_runtime to set request/slice suggestion") and
	// clamps it to 0.1-100 ms: a thread with a short slice gets an early
	// deadline, so its wake-up preempts a thread with the default slice,
	// with no more share of the CPU. Older kernels take it and ignore it
	// (they read sched_runtime for SCHED_DEADLINE only).
	Slice time.Duration
	// ResetOnFork: threads the thread creates start under SCHED_NORMAL,
	// at a nice value of at least 0, with the default slice.
	ResetOnFork bool
}

// Fair reports whether s is a policy of the fair scheduler.
func (s Sched) Fair() bool { return s.Policy == unix.SCHED_NORMAL || s.Policy == unix.SCHED_BATCH }

// ThreadSched is how the thread tid of this process (0: the calling
// thread) is scheduled. Slice is the kernel's current slice of a fair
// thread from Linux 6.12 on (the default one unless set), 0 before.
func ThreadSched(tid int) (Sched, error) {
	a, err := unix.SchedGetAttr(tid, 0)
	if err != nil {
		return Sched{}, os.NewSyscallError("sched_getattr", err)
	}
	s := Sched{Policy: a.Policy, Nice: a.Nice, Priority: a.Priority, ResetOnFork: a.Flags&unix.SCHED_FLAG_RESET_ON_FORK != 0}
	if s.Fair() {
		s.Slice = time.Duration(a.Runtime)
	}
	return s, nil
}

// SetThreadSched schedules the thread tid of this process (0: the calling
// thread) as s. Raising a priority needs CAP_SYS_NICE or RLIMIT_RTPRIO
// (EPERM); SCHED_DEADLINE is not supported.
func SetThreadSched(tid int, s Sched) error {
	a := unix.SchedAttr{Size: unix.SizeofSchedAttr, Policy: s.Policy, Nice: s.Nice, Priority: s.Priority}
	if s.Fair() {
		a.Runtime = uint64(max(s.Slice, 0))
	}
	if s.ResetOnFork {
		a.Flags = unix.SCHED_FLAG_RESET_ON_FORK
	}
	if err := unix.SchedSetAttr(tid, &a, 0); err != nil {
		return os.NewSyscallError("sched_setattr", err)
	}
	return nil
}

// ThreadAffinity returns the CPUs the thread tid of this process may run
// on.
func ThreadAffinity(tid int) ([]int, error) {
	var set unix.CPUSet
	if err := unix.SchedGetaffinity(tid, &set); err != nil {
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

// Threads lists the threads of this process (/proc/self/task).
func Threads() ([]int, error) {
	d, err := os.ReadDir("/proc/self/task")
	if err != nil {
		return nil, err
	}
	var tids []int
	for _, e := range d {
		if tid, err := strconv.Atoi(e.Name()); err == nil {
			tids = append(tids, tid)
		}
	}
	return tids, nil
}
