package testutil

import (
	"os"
	"path/filepath"
	"testing"
)

// TestOpenFDs: the listing CheckFDs relies on sees a descriptor come and go.
func TestOpenFDs(t *testing.T) {
	path := filepath.Join(t.TempDir(), "f")
	before := OpenFDs(t)
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	if got := OpenFDs(t)[int(f.Fd())]; got != path || before[int(f.Fd())] == path {
		t.Errorf("descriptor %d: listed as %q after the open, %q before; want %q only after", f.Fd(), got, before[int(f.Fd())], path)
	}
	f.Close()
	for fd, target := range OpenFDs(t) {
		if target == path {
			t.Errorf("descriptor %d still listed as %s after Close", fd, target)
		}
	}
	SameFDs(t, before)
}

// TestFIFODir: every channel named gets its .in and .out FIFOs.
func TestFIFODir(t *testing.T) {
	dir := FIFODir(t, "agent-ctl-path", "trace-path-cpu0")
	for _, name := range []string{"agent-ctl-path.in", "agent-ctl-path.out", "trace-path-cpu0.in", "trace-path-cpu0.out"} {
		st, err := os.Lstat(filepath.Join(dir, name))
		if err != nil || st.Mode().Type() != os.ModeNamedPipe {
			t.Errorf("%s: %v, %v; want a FIFO", name, st, err)
		}
	}
	if ents, _ := os.ReadDir(dir); len(ents) != 4 {
		t.Errorf("%d entries in %s, want 4", len(ents), dir)
	}
}
