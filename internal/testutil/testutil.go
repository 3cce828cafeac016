// Package testutil holds the few helpers vtrace's tests share: finding the
// real parts (tracefs, root, programs) and refusing to skip under CI,
// building the binary (BuildVtrace, removed by Main) and running its agent
// on this machine (StartAgent), FIFO directories (FIFODir) and the
// descriptor-leak check (CheckFDs).
package testutil

import (
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/vtrace/vtrace/proto/tracefs"
)

// InCI reports whether the tests run under CI (CI=true), where a missing
// real part is a failure, not a skip.
func InCI() bool { return os.Getenv("CI") == "true" }

// Need skips the test when ok is false, saying what is missing and how to
// get it; under CI it fails instead, so nothing silently stops being tested.
func Need(t testing.TB, ok bool, what, how string) {
	t.Helper()
	if ok {
		return
	}
	if InCI() {
		t.Fatalf("%s is missing (CI=true forbids skipping): %s", what, how)
	}
	t.Skipf("%s is missing: %s", what, how)
}

// NeedRoot requires uid 0.
func NeedRoot(t testing.TB) {
	t.Helper()
	Need(t, os.Geteuid() == 0, "root", "run the tests as root (sudo make test)")
}

// NeedProgram requires an executable on PATH and returns its path.
func NeedProgram(t testing.TB, name, pkg string) string {
	t.Helper()
	p, err := exec.LookPath(name)
	Need(t, err == nil, name, "apt-get install -y --no-install-recommends "+pkg)
	return p
}

// Tracefs returns the mounted tracefs directory, mounting it at
// /sys/kernel/tracing when it is not mounted and we are root.
func Tracefs(t testing.TB) string {
	t.Helper()
	NeedRoot(t)
	for _, d := range []string{"/sys/kernel/tracing", "/sys/kernel/debug/tracing"} {
		if _, err := os.Stat(filepath.Join(d, "trace_pipe")); err == nil {
			return d
		}
	}
	out, err := exec.Command("mount", "-t", "tracefs", "nodev", "/sys/kernel/tracing").CombinedOutput()
	Need(t, err == nil, "tracefs", "mount -t tracefs nodev /sys/kernel/tracing ("+strings.TrimSpace(string(out))+")")
	return "/sys/kernel/tracing"
}

// Instance creates a private ftrace instance for the test and removes it at
// the end. It returns the instance directory.
func Instance(t testing.TB, name string) string {
	t.Helper()
	root := Tracefs(t)
	dir := filepath.Join(root, "instances", name)
	os.Remove(dir) // a leftover from a killed run
	if err := os.Mkdir(dir, 0o755); err != nil {
		t.Fatalf("create ftrace instance: %v", err)
	}
	t.Cleanup(func() {
		os.WriteFile(filepath.Join(dir, "tracing_on"), []byte("0"), 0)
		os.WriteFile(filepath.Join(dir, "events/enable"), []byte("0"), 0)
		// EBUSY while a reader the test started (killed by an earlier
		// cleanup) has not yet closed its files: wait for it, a while.
		err := os.Remove(dir)
		for give := time.Now().Add(10 * time.Second); errors.Is(err, syscall.EBUSY) && time.Now().Before(give); err = os.Remove(dir) {
			time.Sleep(20 * time.Millisecond)
		}
		if err != nil {
			t.Logf("remove ftrace instance %s: %v", dir, err)
		}
	})
	return dir
}

// CPUStats reads per_cpu/cpuN/stats of an ftrace instance (or the top
// buffer) into its counters by name: "entries", "overrun", "commit
// overrun", "bytes", "dropped events", "read events". The timestamps,
// which are not integers, are left out.
func CPUStats(t testing.TB, inst string, cpu int) map[string]int64 {
	t.Helper()
	b, err := os.ReadFile(tracefs.PerCPU(inst, cpu, "stats"))
	if err != nil {
		t.Fatal(err)
	}
	m := map[string]int64{}
	for _, line := range strings.Split(string(b), "\n") {
		k, v, ok := strings.Cut(line, ":")
		if n, err := strconv.ParseInt(strings.TrimSpace(v), 10, 64); ok && err == nil {
			m[k] = n
		}
	}
	return m
}

// CPUStat is one counter of CPUStats; a missing one fails the test.
func CPUStat(t testing.TB, inst string, cpu int, key string) int64 {
	t.Helper()
	v, ok := CPUStats(t, inst, cpu)[key]
	if !ok {
		t.Fatalf("no %q in %s", key, tracefs.PerCPU(inst, cpu, "stats"))
	}
	return v
}

// InstanceCPUs counts the per-CPU buffers (per_cpu/cpuN) of an ftrace
// instance.
func InstanceCPUs(t testing.TB, inst string) int {
	t.Helper()
	m, err := filepath.Glob(filepath.Join(inst, "per_cpu", "cpu*"))
	if err != nil || len(m) == 0 {
		t.Fatalf("find per_cpu buffers in %s: %v", inst, err)
	}
	return len(m)
}

// WaitFor polls cond every 20 ms until it holds. A minute is a guard
// against a hang, not a measure: past it the test fails, naming what it
// waited for.
func WaitFor(t testing.TB, what string, cond func() bool) {
	t.Helper()
	for give := time.Now().Add(time.Minute); !cond(); time.Sleep(20 * time.Millisecond) {
		if time.Now().After(give) {
			t.Fatalf("waited a minute for %s", what)
		}
	}
}

// MemTotalKiB is the machine's RAM in KiB, from /proc/meminfo.
func MemTotalKiB(t testing.TB) uint64 {
	t.Helper()
	b, err := os.ReadFile("/proc/meminfo")
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "MemTotal:"); ok {
			n, err := strconv.ParseUint(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
			if err != nil {
				t.Fatalf("parse %q in /proc/meminfo: %v", line, err)
			}
			return n
		}
	}
	t.Fatal("no MemTotal in /proc/meminfo")
	return 0
}

// IsDir reports whether p is a directory.
func IsDir(p string) bool {
	st, err := os.Stat(p)
	return err == nil && st.IsDir()
}

// Repo returns the repository's top directory (where go.mod is).
func Repo(t testing.TB) string {
	t.Helper()
	d, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}
	for {
		if _, err := os.Stat(filepath.Join(d, "go.mod")); err == nil {
			return d
		}
		p := filepath.Dir(d)
		if p == d {
			t.Fatal("go.mod not found above the test directory")
		}
		d = p
	}
}
