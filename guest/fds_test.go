package guest_test

import (
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"
)

// openFDs lists the process's open fds (/proc/self/fd) with what each one
// is (its link: a path, pipe:[INODE], anon_inode:[eventfd], ...).
func openFDs(t *testing.T) map[string]string {
	t.Helper()
	entries, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		t.Fatal(err)
	}
	fds := map[string]string{}
	for _, e := range entries {
		link, err := os.Readlink(filepath.Join("/proc/self/fd", e.Name()))
		if err != nil {
			continue // the fd ReadDir read the directory with, closed since
		}
		fds[e.Name()] = link
	}
	return fds
}

// checkFDs fails the test when the process holds fds it did not hold at
// before (openFDs), or holds fewer: whatever the agent opened must be
// closed by Close, and nothing else closed.
func checkFDs(t *testing.T, before map[string]string) {
	t.Helper()
	after := openFDs(t)
	var leaked []string
	for fd, link := range after {
		if before[fd] != link {
			leaked = append(leaked, fd+" -> "+link)
		}
	}
	sort.Strings(leaked)
	if len(leaked) > 0 || len(after) != len(before) {
		t.Errorf("%d fds open, %d before; still open: %s", len(after), len(before), strings.Join(leaked, ", "))
	}
}
