package e2e

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/vtrace/vtrace/internal/testutil"
	"github.com/vtrace/vtrace/internal/vmtest"
	"github.com/vtrace/vtrace/proto/ringbuf"
)

// collector is a `vtrace host collect` running in the background.
type collector struct {
	t      testing.TB
	cmd    *exec.Cmd
	out    string
	stdout bytes.Buffer
	stderr bytes.Buffer
	done   chan struct{}
	err    error
}

// startCollect runs `vtrace host collect --dir g.Dir -o out --quiet
// args...`; with --start it returns once the agent records.
func startCollect(t testing.TB, g *vmtest.Guest, out string, args ...string) *collector {
	dir := g.Dir
	t.Helper()
	c := &collector{t: t, out: out, done: make(chan struct{})}
	c.cmd = exec.Command(testutil.BuildVtrace(t),
		append([]string{"host", "collect", "--dir", dir, "-o", out, "--quiet"}, args...)...)
	c.cmd.Stdout, c.cmd.Stderr = &c.stdout, &c.stderr
	c.cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := c.cmd.Start(); err != nil {
		t.Fatalf("start vtrace host collect: %v", err)
	}
	go func() {
		c.err = c.cmd.Wait()
		close(c.done)
	}()
	t.Cleanup(func() {
		select {
		case <-c.done:
		default:
			c.cmd.Process.Kill()
			<-c.done
		}
	})
	if started := slices.Contains(args, "--start"); started {
		c.waitRecording(g)
	}
	return c
}

// waitRecording waits until the collector has the agent's metadata
// (OUT/meta, saved before it sends the start order) and the agent logged
// its start on the console (60 s at most each), so that a signal sent later
// stops a recording: one that comes during the handshake fails collect.
func (c *collector) waitRecording(g *vmtest.Guest) {
	c.t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for time.Now().Before(deadline) {
		if _, err := os.Stat(filepath.Join(c.out, "meta", "events", "header_page")); err == nil {
			if _, err := g.WaitFor(`level=DEBUG msg=start `, 60*time.Second); err != nil {
				c.t.Fatal(err)
			}
			return
		}
		select {
		case <-c.done:
			c.t.Fatalf("vtrace host collect ended before recording: %v\n%s%s", c.err, c.stdout.String(), c.stderr.String())
		case <-time.After(50 * time.Millisecond):
		}
	}
	c.t.Logf("vtrace host collect saved no metadata within 60s; going on")
}

// stop sends sig and waits (60 s at most) for the collector to exit. With
// SIGTERM it must exit cleanly; its summary is logged.
func (c *collector) stop(sig syscall.Signal) {
	c.t.Helper()
	select {
	case <-c.done:
		c.t.Fatalf("vtrace host collect ended before it was stopped: %v\n%s%s", c.err, c.stdout.String(), c.stderr.String())
	default:
	}
	if err := c.cmd.Process.Signal(sig); err != nil {
		c.t.Fatalf("signal vtrace host collect: %v", err)
	}
	c.wait(60 * time.Second)
	if sig == syscall.SIGKILL {
		return
	}
	if c.err != nil {
		c.t.Fatalf("vtrace host collect after %v: %v\n%s%s", sig, c.err, c.stdout.String(), c.stderr.String())
	}
	c.t.Logf("vtrace host collect -o %s:\n%s%s", filepath.Base(c.out), c.stdout.String(), c.stderr.String())
}

// wait waits for the collector to exit on its own (e.g. --duration).
func (c *collector) wait(bound time.Duration) {
	c.t.Helper()
	select {
	case <-c.done:
	case <-time.After(bound):
		c.cmd.Process.Kill()
		<-c.done
		c.t.Fatalf("vtrace host collect did not exit within %s; killed it\n%s%s", bound, c.stdout.String(), c.stderr.String())
	}
}

// vtrace runs a vtrace command to its end and returns its output.
func vtrace(t testing.TB, args ...string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, testutil.BuildVtrace(t), args...).CombinedOutput()
	if err != nil {
		t.Fatalf("vtrace %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return string(out)
}

// cpuCapture is what one CPU's raw file holds.
type cpuCapture struct {
	Bytes        int64
	Pages        int64
	Events       int64
	MissedPages  int64  // pages flagged with events missed before them
	Unstored     int64  // of those, pages without room for the count
	MissedStored uint64 // the sum of the stored counts
	Partial      int    // bytes of a trailing partial page
}

func (c *cpuCapture) add(o cpuCapture) {
	c.Bytes += o.Bytes
	c.Pages += o.Pages
	c.Events += o.Events
	c.MissedPages += o.MissedPages
	c.Unstored += o.Unstored
	c.MissedStored += o.MissedStored
	c.Partial += o.Partial
}

// scanRaw reads path page by page with proto/ringbuf (the guest's layout:
// x86-64, 4 KiB pages). A missing file is an empty capture.
func scanRaw(t testing.TB, path string) cpuCapture {
	t.Helper()
	data, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return cpuCapture{}
	}
	if err != nil {
		t.Fatal(err)
	}
	l := ringbuf.DefaultLayout()
	c := cpuCapture{Bytes: int64(len(data)), Partial: len(data) % l.PageSize}
	for off := 0; off+l.PageSize <= len(data); off += l.PageSize {
		ps, err := ringbuf.ParsePage(l, data[off:off+l.PageSize], nil)
		if err != nil {
			t.Fatalf("%s: page %d (offset %d): %v", path, c.Pages, off, err)
		}
		c.Pages++
		c.Events += int64(ps.Events)
		if ps.Missed {
			c.MissedPages++
			if ps.MissedCount == 0 {
				c.Unstored++
			}
			c.MissedStored += ps.MissedCount
		}
	}
	return c
}

// scanCaptures sums, per CPU, the raw files cpuN.raw of every capture
// directory in dirs.
func scanCaptures(t testing.TB, cpus int, dirs ...string) []cpuCapture {
	t.Helper()
	all := make([]cpuCapture, cpus)
	for _, d := range dirs {
		for cpu := range all {
			c := scanRaw(t, filepath.Join(d, fmt.Sprintf("cpu%d.raw", cpu)))
			if c.Partial != 0 {
				t.Errorf("%s/cpu%d.raw ends with %d bytes of a partial page", d, cpu, c.Partial)
			}
			all[cpu].add(c)
		}
	}
	return all
}

// checkLossless compares, per CPU, the events that reached the host with
// the guest kernel's counts between before and after (tracing was off by
// then): every event the kernel handed to a reader arrived, none is left in
// the buffer, none was overwritten and no page says events were missed.
func checkLossless(t testing.TB, got []cpuCapture, before, after []vmtest.CPUStats) {
	t.Helper()
	for cpu, c := range got {
		read := after[cpu].ReadEvents - before[cpu].ReadEvents
		t.Logf("cpu %d: host %d events in %d pages; guest read %d, entries %d, overrun %d",
			cpu, c.Events, c.Pages, read, after[cpu].Entries, after[cpu].Overrun)
		if c.Events == 0 {
			t.Errorf("cpu %d: no events reached the host", cpu)
		}
		if uint64(c.Events) != read {
			t.Errorf("cpu %d: the host parsed %d events, the guest kernel handed out %d (read_events %d -> %d)",
				cpu, c.Events, read, before[cpu].ReadEvents, after[cpu].ReadEvents)
		}
		if after[cpu].Entries != 0 {
			t.Errorf("cpu %d: %d events left unread in the guest's buffer", cpu, after[cpu].Entries)
		}
		if after[cpu].Overrun != 0 || after[cpu].CommitOverrun != 0 || after[cpu].DroppedEvents != 0 {
			t.Errorf("cpu %d: the guest lost events: overrun %d, commit_overrun %d, dropped %d",
				cpu, after[cpu].Overrun, after[cpu].CommitOverrun, after[cpu].DroppedEvents)
		}
		if c.MissedPages != 0 {
			t.Errorf("cpu %d: %d pages flagged with missed events (%d counted)", cpu, c.MissedPages, c.MissedStored)
		}
	}
}

// stats returns the guest's per-CPU stats or fails the test.
func stats(t testing.TB, g *vmtest.Guest) []vmtest.CPUStats {
	t.Helper()
	s, err := g.Stats()
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// command runs a test-port command or fails the test.
func command(t testing.TB, g *vmtest.Guest, args ...string) string {
	t.Helper()
	out, err := g.Command(args...)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// runWorkload runs a guest workload on every CPU to its end.
func runWorkload(t testing.TB, g *vmtest.Guest, name string, seconds int, arg string) {
	t.Helper()
	id, err := g.StartWorkload(name, seconds, arg)
	if err != nil {
		t.Fatal(err)
	}
	if err := g.WaitWorkload(id, time.Duration(seconds)*time.Second+60*time.Second); err != nil {
		t.Fatal(err)
	}
}

// drained waits until the guest's buffers hold no unread event on any CPU
// (the agent has read everything), polling its stats; it fails after bound.
func drained(t testing.TB, g *vmtest.Guest, bound time.Duration) []vmtest.CPUStats {
	t.Helper()
	deadline := time.Now().Add(bound)
	for {
		s := stats(t, g)
		left := uint64(0)
		for _, c := range s {
			left += c.Entries
		}
		if left == 0 {
			return s
		}
		if time.Now().After(deadline) {
			t.Fatalf("the guest's buffers still hold %d unread events after %s: %+v", left, bound, s)
		}
		time.Sleep(500 * time.Millisecond)
	}
}

// logDuration logs how long the test took: the VM tests share CI's time,
// and each bounds its own waits instead of asserting on time.
func logDuration(t *testing.T) {
	begin := time.Now()
	t.Cleanup(func() { t.Logf("the test took %s", time.Since(begin).Round(time.Second)) })
}
