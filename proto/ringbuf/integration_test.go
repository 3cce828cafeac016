package ringbuf

import (
	"bytes"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"testing"

	"github.com/vtrace/vtrace/internal/testutil"
	"github.com/vtrace/vtrace/proto/tracefs"
)

// TestIntegrationKernelPages reads every page a real ring buffer recorded,
// partial last pages included, and checks the parser counts exactly the
// events the kernel says were read.
func TestIntegrationKernelPages(t *testing.T) {
	t.Parallel()
	inst := testutil.Instance(t, "vtrace-ringbuf-test")
	l, err := LayoutFromTracefs(inst)
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range []string{"events/sched/enable", "events/irq/enable"} {
		if err := os.WriteFile(filepath.Join(inst, f), []byte("1"), 0); err != nil {
			t.Fatal(err)
		}
	}
	for i := 0; i < 50; i++ {
		if err := exec.Command("/bin/true").Run(); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.WriteFile(filepath.Join(inst, "tracing_on"), []byte("0"), 0); err != nil {
		t.Fatal(err)
	}
	cpus, _ := filepath.Glob(filepath.Join(inst, "per_cpu", "cpu*"))
	var total int64
	for cpu := 0; cpu < len(cpus); cpu++ {
		before := testutil.CPUStat(t, inst, cpu, "read events")
		entries := testutil.CPUStat(t, inst, cpu, "entries")
		overrun := testutil.CPUStat(t, inst, cpu, "overrun")
		// A raw fd: os.File would hand tracefs's pollable file to the
		// runtime poller and wait for buffer_percent instead of EAGAIN.
		fd, err := syscall.Open(tracefs.PerCPU(inst, cpu, "trace_pipe_raw"), os.O_RDONLY|syscall.O_NONBLOCK|syscall.O_CLOEXEC, 0)
		if err != nil {
			t.Fatal(err)
		}
		var buf bytes.Buffer
		page := make([]byte, l.PageSize)
		for {
			n, err := syscall.Read(fd, page)
			if errors.Is(err, syscall.EAGAIN) || n == 0 {
				break
			}
			if err != nil {
				t.Fatal(err)
			}
			if n != l.PageSize {
				t.Fatalf("cpu%d: read %d bytes, want whole pages of %d", cpu, n, l.PageSize)
			}
			buf.Write(page)
		}
		syscall.Close(fd)
		s, err := Scan(l, &buf, nil)
		if err != nil {
			t.Fatalf("cpu%d: %v", cpu, err)
		}
		read := testutil.CPUStat(t, inst, cpu, "read events") - before
		if s.Events != read || s.Events != entries || overrun != 0 {
			t.Errorf("cpu%d: parsed %d events; kernel: %d entries before, %d read, %d overrun", cpu, s.Events, entries, read, overrun)
		}
		if left := testutil.CPUStat(t, inst, cpu, "entries"); left != 0 {
			t.Errorf("cpu%d: %d entries left in the ring buffer", cpu, left)
		}
		if s.MissedPages != 0 {
			t.Errorf("cpu%d: %d pages flag missed events", cpu, s.MissedPages)
		}
		total += s.Events
	}
	if total == 0 {
		t.Fatal("no events recorded at all")
	}
}
