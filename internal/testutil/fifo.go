package testutil

import (
	"os"
	"path/filepath"
	"syscall"
	"testing"
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
