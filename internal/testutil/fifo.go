package testutil

import (
	"os"
	"os/exec"
	"path/filepath"
	"sync"
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

// CatPipeRaw copies a trace_pipe_raw to out (a FIFO or a file) in the
// background, as `cat trace_pipe_raw > out` does in the kernel's C agent's
// plain workflow, until the test ends. A read of trace_pipe_raw that races
// a writer in the middle of a commit returns 0 although events remain
// (tracing_buffers_read in kernel/trace/trace.c), which ends a plain cat:
// cat is started again after each such end. The copy and its cat are one
// process group, killed by stop (which may be called more than once) or
// when the test ends. It fails the test (t.Error) if the copy cannot start.
func CatPipeRaw(t testing.TB, raw, out string) (stop func()) {
	t.Helper()
	cmd := exec.Command("sh", "-c", `exec 3>"$2" && while cat "$1" >&3; do :; done`, "sh", raw, out)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		t.Error(err)
		return func() {}
	}
	var once sync.Once
	stop = func() {
		once.Do(func() {
			syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
			cmd.Wait()
		})
	}
	t.Cleanup(stop)
	return stop
}
