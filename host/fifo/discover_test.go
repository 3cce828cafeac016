package fifo

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

func TestTraceCPUs(t *testing.T) {
	dir := t.TempDir()
	for _, name := range []string{"trace-path-cpu0.out", "trace-path-cpu10.out", "trace-path-cpu2.out",
		"trace-path-cpu2.in", "trace-path-cpu01.out", "trace-path-cpu-1.out", "trace-path-cpu.out",
		"trace-path-cpu3.out.bak", "agent-ctl-path.out"} {
		if err := os.WriteFile(filepath.Join(dir, name), nil, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	cpus, err := TraceCPUs(dir)
	if err != nil {
		t.Fatal(err)
	}
	if got, want := cpus, []int{0, 2, 10}; !slices.Equal(got, want) {
		t.Errorf("TraceCPUs: got %v, want %v", got, want)
	}
}

func TestTraceCPUsNone(t *testing.T) {
	for _, dir := range []string{t.TempDir(), filepath.Join(t.TempDir(), "missing")} {
		_, err := TraceCPUs(dir)
		if err == nil || !strings.Contains(err.Error(), "vtrace host setup") {
			t.Errorf("TraceCPUs(%s): got %v, want an error pointing to vtrace host setup", dir, err)
		}
	}
}
