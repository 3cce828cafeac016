package collect_test

import (
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

// checkFDs fails the test when it ends with a descriptor open that was not
// open when it began: whatever collect.Run opens, it must close, on every
// path out. Call it first, so that its check runs after every other
// cleanup (LIFO). A test that failed already is not checked: its early
// exit may leave its own descriptors to the garbage collector.
func checkFDs(t *testing.T) {
	t.Helper()
	// The runtime's poller makes its descriptors (epoll, its wake-up
	// eventfd) once per process, at the first pollable file: make them
	// now, so they are not taken for a leak.
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	r.Close()
	w.Close()
	before := openFDs(t)
	t.Cleanup(func() {
		if t.Failed() {
			return
		}
		var leaked []string
		for fd, target := range openFDs(t) {
			if before[fd] != target {
				leaked = append(leaked, strconv.Itoa(fd)+" -> "+target)
			}
		}
		if len(leaked) > 0 {
			t.Errorf("descriptors left open: %s", strings.Join(leaked, ", "))
		}
	})
}

// openFDs maps each open descriptor of this process to what it refers to,
// from /proc/self/fd, leaving out the one that lists the directory.
func openFDs(t *testing.T) map[int]string {
	t.Helper()
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

// TestOpenFDs: the listing checkFDs relies on sees a descriptor come and go.
func TestOpenFDs(t *testing.T) {
	path := filepath.Join(t.TempDir(), "f")
	before := openFDs(t)
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	if got := openFDs(t)[int(f.Fd())]; got != path || before[int(f.Fd())] == path {
		t.Errorf("descriptor %d: listed as %q after the open, %q before; want %q only after", f.Fd(), got, before[int(f.Fd())], path)
	}
	f.Close()
	for fd, target := range openFDs(t) {
		if target == path {
			t.Errorf("descriptor %d still listed as %s after Close", fd, target)
		}
	}
}
