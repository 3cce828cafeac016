package testutil

import (
	"os"
	"path/filepath"
	"syscall"
	"testing"

	"github.com/vtrace/vtrace/internal/sys"
	"github.com/vtrace/vtrace/proto/channel"
)

// FIFODir makes, in a fresh directory, the FIFO pair of each channel
// named, as `vtrace host setup` and qemu's pipe chardevs lay them out:
// NAME.in (host to guest) and NAME.out (guest to host). It returns the
// directory, removed when the test ends.
func FIFODir(t testing.TB, names ...string) string {
	t.Helper()
	dir := t.TempDir()
	for _, n := range names {
		for _, ext := range []string{".in", ".out"} {
			p := filepath.Join(dir, n+ext)
			if err := syscall.Mkfifo(p, 0o600); err != nil {
				t.Fatal(&os.PathError{Op: "mkfifo", Path: p, Err: err})
			}
		}
	}
	return dir
}

// ReachableDir returns a new directory that any user (qemu's, a
// collector's without root) may pass through: mode 0711, in the system's
// temporary directory, removed when the test ends. t.TempDir's parent is
// 0700, which only its owner passes.
func ReachableDir(t testing.TB) string {
	t.Helper()
	d, err := os.MkdirTemp("", "vtrace-reachable-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(d) })
	if err := os.Chmod(d, 0o711); err != nil {
		t.Fatal(err)
	}
	return d
}

// HoldStreams opens DIR/trace-path-cpuN.out of CPUs 0 to cpus-1 for
// reading, O_RDWR and non-blocking, as qemu holds its FIFOs: the writers
// never block in open nor get EPIPE, and a read of an empty FIFO is
// EAGAIN. The descriptors, in CPU order, are closed when the test ends.
func HoldStreams(t testing.TB, dir string, cpus int) []int {
	t.Helper()
	var fds []int
	for cpu := range cpus {
		fd, err := sys.Open(filepath.Join(dir, channel.Data(cpu)+".out"), sys.FIFOReadNonblock, 0)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { sys.Close(fd) })
		fds = append(fds, fd)
	}
	return fds
}
