// Package testutil holds the few helpers vtrace's tests share: finding the
// real parts (tracefs, root, programs) and refusing to skip under CI,
// building the binary (BuildVtrace, removed by Main) and running its agent
// on this machine (StartAgent), FIFO directories (FIFODir) and the
// descriptor-leak check (CheckFDs).
package testutil

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
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
		if err := os.Remove(dir); err != nil {
			t.Logf("remove ftrace instance %s: %v", dir, err)
		}
	})
	return dir
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
