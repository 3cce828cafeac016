package collect_test

import (
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/vtrace/vtrace/host/collect"
	"github.com/vtrace/vtrace/host/fifo"
	"github.com/vtrace/vtrace/internal/sys"
	"github.com/vtrace/vtrace/internal/testutil"
	"github.com/vtrace/vtrace/proto/channel"
	"github.com/vtrace/vtrace/proto/ringbuf"
)

// tinyTmpfs mounts a tmpfs of size bytes on a fresh directory.
func tinyTmpfs(t *testing.T, size string) string {
	t.Helper()
	testutil.NeedRoot(t)
	dir := t.TempDir()
	out, err := exec.Command("mount", "-t", "tmpfs", "-o", "size="+size, "vtrace-test", dir).CombinedOutput()
	testutil.Need(t, err == nil, "tmpfs", "a kernel with tmpfs and mount(8): "+strings.TrimSpace(string(out)))
	t.Cleanup(func() {
		if out, err := exec.Command("umount", dir).CombinedOutput(); err != nil {
			t.Errorf("umount %s: %v: %s", dir, err, out)
		}
	})
	return dir
}

// feed writes zeros into w, a CPU's FIFO, in writes of chunk bytes until
// the collector goes away (EPIPE).
func feed(w *os.File, chunk int) <-chan error {
	errc := make(chan error, 1)
	go func() {
		defer w.Close()
		buf := make([]byte, chunk)
		for {
			if _, err := w.Write(buf); err != nil {
				if errors.Is(err, syscall.EPIPE) {
					err = nil
				}
				errc <- err
				return
			}
		}
	}()
	return errc
}

// TestIntegrationCollectFullDisk fills a 256 KiB tmpfs: the capture stops
// with an error naming the file, which keeps only whole pages; the binary
// exits non-zero and still prints the summary.
func TestIntegrationCollectFullDisk(t *testing.T) {
	testutil.CheckFDs(t)
	disk := tinyTmpfs(t, "256k")
	dir := fifoDir(t, 1)
	out := filepath.Join(disk, "capture")
	// 12 KiB pages: the 64 pages of the tmpfs do not hold a whole number
	// of them, so the disk fills up in the middle of one.
	const pageSize = 12288

	done := runAsync(context.Background(), collect.Config{Dir: dir, Out: out, PageSize: pageSize})
	fed := feed(openWriter(t, dir, 0, done), 1000) // odd-sized: pages cut anywhere
	r := <-done
	if err := <-fed; err != nil {
		t.Fatal(err)
	}
	if !errors.Is(r.err, sys.ENOSPC) || !strings.Contains(r.err.Error(), "cpu0.raw") {
		t.Fatalf("Run on a full disk: got %v, want an ENOSPC error naming cpu0.raw", r.err)
	}
	if len(r.sum.CPUs) != 1 {
		t.Fatalf("summary has %d CPUs, want 1", len(r.sum.CPUs))
	}
	c := r.sum.CPUs[0]
	st, err := os.Stat(c.File)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("kept %d bytes, cut %d", c.Bytes, c.Dropped)
	if c.Bytes == 0 || c.Bytes%pageSize != 0 || st.Size() != c.Bytes || c.Dropped == 0 {
		t.Errorf("after a full disk: file of %d bytes, summary %d kept and %d cut; want a non-empty whole number of %d-byte pages and a cut tail",
			st.Size(), c.Bytes, c.Dropped, pageSize)
	}
	if c.ScanErr != nil || c.Stats.Pages != c.Bytes/pageSize {
		t.Errorf("page reader on the kept pages: %d pages, %v", c.Stats.Pages, c.ScanErr)
	}

	// The same through the command, replacing the capture with --force.
	cmd := testutil.StartVtrace(t, "host", "collect", "--dir", dir, "-o", out, "--force", "--page-size", strconv.Itoa(pageSize))
	fed = feed(openWriterProc(t, dir, 0, cmd.Cmd), 1000)
	err = cmd.Wait()
	if ferr := <-fed; ferr != nil {
		t.Fatal(ferr)
	}
	var exit *exec.ExitError
	if !errors.As(err, &exit) || exit.ExitCode() != 1 {
		t.Errorf("vtrace host collect on a full disk: got %v, want exit code 1", err)
	}
	if stderr := cmd.Stderr(); !strings.Contains(stderr, "no space left on device") || !strings.Contains(stderr, "cpu0.raw") {
		t.Errorf("stderr does not name the full disk and the file:\n%s", stderr)
	}
	if !strings.Contains(cmd.Stdout(), "cut a trailing partial page") {
		t.Errorf("stdout lacks the summary:\n%s", cmd.Stdout())
	}
	if st, err := os.Stat(c.File); err != nil || st.Size()%pageSize != 0 {
		t.Errorf("cpu0.raw after the command: %v, %v; want whole pages", st, err)
	}
}

// openWriterProc is openWriter for a collector running as a process.
func openWriterProc(t *testing.T, dir string, cpu int, p *exec.Cmd) *os.File {
	t.Helper()
	give := time.Now().Add(time.Minute) // a guard against a hang, not a measure
	return waitWriter(t, dir, cpu, func() {
		if time.Now().After(give) {
			t.Fatalf("%s did not open its FIFOs", p.Path)
		}
	})
}

func writeTracefs(t *testing.T, path, value string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(value), 0); err != nil {
		t.Fatalf("write %q to %s: %v", value, path, err)
	}
}

// catStreams copies each CPU's trace_pipe_raw into its FIFO with cat, the
// simplest guest side there is.
func catStreams(t *testing.T, inst, dir string, cpus int) {
	t.Helper()
	for cpu := range cpus {
		_, path := fifo.Paths(dir, channel.Data(cpu))
		raw := filepath.Join(inst, "per_cpu", "cpu"+strconv.Itoa(cpu), "trace_pipe_raw")
		testutil.CatPipeRaw(t, raw, path)
	}
}

// checkCapture checks that every cpuN.raw holds whole pages that parse.
func checkCapture(t *testing.T, out string, cpus int) int64 {
	t.Helper()
	var total int64
	for cpu := range cpus {
		file := filepath.Join(out, collect.FileName(cpu))
		st, err := ringbuf.ScanFile(ringbuf.DefaultLayout(), file, nil)
		if err != nil {
			t.Errorf("read %s: %v", file, err)
		}
		total += st.Bytes
	}
	return total
}

// TestIntegrationCollectSIGTERM stops a running `vtrace host collect` with
// SIGTERM, then starts another one with --force on the same directory while
// the streams keep flowing: both end cleanly with whole, readable pages.
func TestIntegrationCollectSIGTERM(t *testing.T) {
	inst, cpus, dir := loopback(t, "vtrace-collect-sigterm")
	writeTracefs(t, filepath.Join(inst, "events/sched/enable"), "1")
	testutil.HoldStreams(t, dir, cpus)
	catStreams(t, inst, dir, cpus)
	out := filepath.Join(t.TempDir(), "capture")

	// Each run is stopped once data has arrived, so the signal lands in
	// the middle of a stream.
	run := func(name string, args ...string) {
		t.Helper()
		// The files of an earlier run are not this run's data: --force
		// replaces them, so a file written since the start is.
		begin := time.Now()
		col := testutil.StartVtrace(t, append([]string{"host", "collect", "--dir", dir, "-o", out}, args...)...)
		testutil.WaitFor(t, name+" run: data in "+out, func() bool {
			for cpu := range cpus {
				st, err := os.Stat(filepath.Join(out, collect.FileName(cpu)))
				if err == nil && st.Size() > 0 && st.ModTime().After(begin) {
					return true
				}
			}
			return false
		})
		col.Stop(t)
		if !strings.Contains(col.Stdout(), "saved ") {
			t.Errorf("%s: no summary after SIGTERM:\n%s", name, col.Stdout())
		}
		if n := checkCapture(t, out, cpus); n == 0 {
			t.Errorf("the %s capture is empty:\n%s", name, col.Stdout())
		}
	}
	run("first")
	// Whole pages for the second run, however idle the machine: 500
	// markers fill several pages of the CPU that writes them. What the
	// streams wrote between the two runs waited in the FIFOs, or comes
	// during the second.
	writeMarkers(t, inst, "vtrace-sigterm", 500)
	run("second", "--force")
}

// cpuStats is one counter of every CPU's per_cpu/cpuN/stats.
func cpuStats(t *testing.T, inst string, cpus int, key string) []int64 {
	t.Helper()
	var vals []int64
	for cpu := range cpus {
		vals = append(vals, testutil.CPUStat(t, inst, cpu, key))
	}
	return vals
}

// TestIntegrationCollectAgent runs a whole capture with --start against the
// guest agent of this repository on a private ftrace instance: every event
// the kernel says was read from each CPU's buffer is in that CPU's file.
func TestIntegrationCollectAgent(t *testing.T) {
	testutil.CheckFDs(t)
	testutil.BuildVtrace(t) // before tracing: a build would fill the buffers
	inst, cpus, dir := loopback(t, "vtrace-collect-agent")
	// Room for what happens between enabling the events and the start order.
	writeTracefs(t, filepath.Join(inst, "buffer_size_kb"), "4096")
	out := filepath.Join(t.TempDir(), "capture")
	testutil.StartAgent(t, testutil.AgentOptions{Tracefs: inst, Dir: dir})
	readBefore := cpuStats(t, inst, cpus, "read events")
	// The workload's own sched events and every irq event. sched_switch
	// and sched_wakeup are left out: they come from the whole machine,
	// which other tests keep busy, and would measure its load, not us.
	for _, ev := range []string{"sched/sched_process_fork", "sched/sched_process_exec", "sched/sched_process_exit",
		"sched/sched_process_free", "sched/sched_wakeup_new", "irq"} {
		writeTracefs(t, filepath.Join(inst, "events", ev, "enable"), "1")
	}

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	started := make(chan struct{})
	done := make(chan result, 1)
	go func() {
		sum, err := collect.RunStarted(ctx, collect.Config{Dir: dir, Out: out, Start: true, OrderTimeout: 30 * time.Second},
			func() { close(started) })
		done <- result{sum, err}
	}()
	// The workload runs while the agent records: a cancel before the
	// agent answered the start order is an interrupted capture.
	select {
	case <-started:
	case r := <-done:
		t.Fatalf("Run: %v before the capture started", r.err)
	}

	// A workload on every CPU: processes that start, switch and exit.
	for cpu := range cpus {
		w := exec.Command("taskset", "-c", strconv.Itoa(cpu), "sh", "-c", "for i in $(seq 300); do /bin/true; done")
		if b, err := w.CombinedOutput(); err != nil {
			t.Fatalf("workload on CPU %d: %v\n%s", cpu, err, b)
		}
	}
	// Record nothing more, so that after the stop the buffers are empty.
	writeTracefs(t, filepath.Join(inst, "tracing_on"), "0")
	cancel()
	r := <-done
	if r.err != nil {
		t.Fatalf("Run: %v", r.err)
	}
	var text strings.Builder
	r.sum.Write(&text)
	t.Logf("summary:\n%s", text.String())

	readAfter := cpuStats(t, inst, cpus, "read events")
	entries := cpuStats(t, inst, cpus, "entries")
	overrun := cpuStats(t, inst, cpus, "overrun")
	var total int64
	for cpu := range cpus {
		c := r.sum.CPUs[cpu]
		if c.CPU != cpu {
			t.Fatalf("summary row %d is CPU %d", cpu, c.CPU)
		}
		if c.ScanErr != nil || c.Dropped != 0 {
			t.Errorf("CPU %d: page reader %v, %d bytes cut; want whole pages that parse", cpu, c.ScanErr, c.Dropped)
		}
		if want := readAfter[cpu] - readBefore[cpu]; c.Stats.Events != want {
			t.Errorf("CPU %d: %d events in %s, the kernel says %d were read", cpu, c.Stats.Events, c.File, want)
		}
		if entries[cpu] != 0 || overrun[cpu] != 0 || c.Stats.MissedPages != 0 {
			t.Errorf("CPU %d: %d entries left, %d overrun, %d missed pages; want none", cpu, entries[cpu], overrun[cpu], c.Stats.MissedPages)
		}
		if overrun[cpu] > 0 && c.Stats.MissedPages == 0 {
			t.Errorf("CPU %d: the kernel overwrote %d events but no page says so", cpu, overrun[cpu])
		}
		total += c.Stats.Events
	}
	if total == 0 {
		t.Error("the capture holds no events")
	}
}

// TestMain removes, after the tests, the vtrace binary they build.
func TestMain(m *testing.M) { testutil.Main(m) }
