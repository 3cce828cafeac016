package sys

import (
	"os"

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
