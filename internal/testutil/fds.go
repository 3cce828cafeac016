package testutil

import (
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
)

// OpenFDs maps each descriptor this process holds to what it refers to,
// from /proc/self/fd: a path, pipe:[INODE], anon_inode:[eventfd], ... The
// Go runtime's poller makes its own descriptors (epoll, its wake-up
// eventfd) once per process, at the first pollable file: OpenFDs makes
// them first, so that they are not taken for a leak.
func OpenFDs(t testing.TB) map[int]string {
	t.Helper()
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	r.Close()
	w.Close()
	const dir = "/proc/self/fd"
	ents, err := os.ReadDir(dir)
	if err != nil {
		t.Fatalf("list open descriptors: %v", err)
	}
	fds := map[int]string{}
	for _, e := range ents {
		fd, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		target, err := os.Readlink(filepath.Join(dir, e.Name()))
		if err != nil {
			continue // the listing's own descriptor, closed by now
		}
		fds[fd] = target
	}
	return fds
}

// SameFDs fails the test when the process holds a descriptor it did not
// hold at before (OpenFDs), or no longer holds one it held: whatever the
// code under test opened must be closed, and nothing else closed.
func SameFDs(t testing.TB, before map[int]string) {
	t.Helper()
	after := OpenFDs(t)
	var diff []string
	for fd, target := range after {
		if before[fd] != target {
			diff = append(diff, "open: "+strconv.Itoa(fd)+" -> "+target)
		}
	}
	for fd, target := range before {
		if after[fd] != target {
			diff = append(diff, "closed: "+strconv.Itoa(fd)+" -> "+target)
		}
	}
	if len(diff) > 0 {
		slices.Sort(diff)
		t.Errorf("descriptors differ from before: %s", strings.Join(diff, ", "))
	}
}

// CheckFDs checks, when the test ends, that the process holds the same
// descriptors as now (SameFDs). Call it first, so that its check runs
// after every other cleanup. A test that failed already is not checked:
// its early exit may leave its own descriptors to the garbage collector.
func CheckFDs(t testing.TB) {
	t.Helper()
	before := OpenFDs(t)
	t.Cleanup(func() {
		if !t.Failed() {
			SameFDs(t, before)
		}
	})
}
