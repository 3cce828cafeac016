package sys

import (
	"runtime"
	"testing"

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
