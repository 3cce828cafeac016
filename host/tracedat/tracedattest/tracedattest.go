// Package tracedattest makes real captures for tests: it drives a private
// ftrace instance, runs a workload with a known command name, and drains
// the instance's ring buffer into cpuN.raw files as the guest agent would.
package tracedattest

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"

	"github.com/vtrace/vtrace/internal/sys"
	"github.com/vtrace/vtrace/proto/ringbuf"
	"github.com/vtrace/vtrace/proto/tracefs"
)

// Write writes val to a file of an ftrace instance.
func Write(t testing.TB, inst, rel, val string) {
	t.Helper()
	if err := os.WriteFile(filepath.Join(inst, rel), []byte(val), 0); err != nil {
		t.Fatalf("write %s: %v", rel, err)
	}
}

// CPUs lists the CPUs of an instance's per_cpu directory.
func CPUs(t testing.TB, inst string) []int {
	t.Helper()
	ents, err := os.ReadDir(filepath.Join(inst, "per_cpu"))
	if err != nil {
		t.Fatal(err)
	}
	var cpus []int
	for _, e := range ents {
		if n, err := strconv.Atoi(strings.TrimPrefix(e.Name(), "cpu")); err == nil {
			cpus = append(cpus, n)
		}
	}
	return cpus
}

// Drain drains an instance's ring buffer, tracing already off, into
// out/cpuN.raw: non-blocking reads of whole pages from trace_pipe_raw until
// EAGAIN, which is what the guest agent sends the host.
func Drain(t testing.TB, inst, out string, pageSize int) {
	t.Helper()
	for _, cpu := range CPUs(t, inst) {
		src := tracefs.PerCPU(inst, cpu, "trace_pipe_raw")
		fd, err := sys.Open(src, os.O_RDONLY|syscall.O_NONBLOCK, 0)
		if err != nil {
			t.Fatal(err)
		}
		var data []byte
		page := make([]byte, pageSize)
		for {
			n, err := sys.Read(fd, page)
			if errors.Is(err, sys.EAGAIN) || (err == nil && n == 0) {
				break
			}
			if err != nil {
				sys.Close(fd)
				t.Fatalf("read %s: %v", src, err)
			}
			if n != pageSize {
				sys.Close(fd)
				t.Fatalf("read %s: %d bytes, want a whole page of %d", src, n, pageSize)
			}
			data = append(data, page...)
		}
		sys.Close(fd)
		if err := os.WriteFile(filepath.Join(out, fmt.Sprintf("cpu%d.raw", cpu)), data, 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

// ProbeComm is the command name of the known workload.
const ProbeComm = "vtrace-probe"

// RunProbe runs the known workload: a process named ProbeComm (a symlink
// to sleep, and the kernel names a process after the file it executes)
// that sleeps 10 ms, so it is switched in and out. It returns its pid.
func RunProbe(t testing.TB, dir string) int {
	t.Helper()
	sleep, err := exec.LookPath("sleep")
	if err != nil {
		t.Fatalf("find sleep: %v", err)
	}
	link := filepath.Join(dir, ProbeComm)
	if _, err := os.Lstat(link); err != nil {
		if err := os.Symlink(sleep, link); err != nil {
			t.Fatal(err)
		}
	}
	cmd := exec.Command(link, "0.01")
	if err := cmd.Run(); err != nil {
		t.Fatalf("run %s: %v", ProbeComm, err)
	}
	return cmd.ProcessState.Pid()
}

// Record traces sched and irq events in inst while running the probe n
// times (each followed by a trace_marker write "vtrace-marker-I"), then
// drains the pages into out/cpuN.raw. It returns the probes' pids.
func Record(t testing.TB, inst, out string, n int) []int {
	t.Helper()
	l, err := ringbuf.LayoutFromTracefs(inst)
	if err != nil {
		t.Fatal(err)
	}
	Write(t, inst, "buffer_size_kb", "4096")
	for _, ev := range []string{"sched/sched_switch", "sched/sched_wakeup", "sched/sched_process_exec",
		"sched/sched_process_fork", "sched/sched_process_exit", "irq"} {
		Write(t, inst, filepath.Join("events", ev, "enable"), "1")
	}
	work := t.TempDir()
	Write(t, inst, "tracing_on", "1")
	var pids []int
	for i := 0; i < n; i++ {
		pids = append(pids, RunProbe(t, work))
		Write(t, inst, "trace_marker", fmt.Sprintf("vtrace-marker-%d", i))
	}
	Write(t, inst, "tracing_on", "0")
	Drain(t, inst, out, l.PageSize)
	return pids
}
