package collect_test

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/vtrace/vtrace/host/collect"
	"github.com/vtrace/vtrace/host/fifo"
	"github.com/vtrace/vtrace/internal/sys"
	"github.com/vtrace/vtrace/internal/testutil"
	"github.com/vtrace/vtrace/proto/channel"
	"github.com/vtrace/vtrace/proto/ringbuf"
)

// fifoDir makes the FIFOs of a guest with cpus vCPUs in a fresh directory,
// as `vtrace host setup` would.
func fifoDir(t *testing.T, cpus int) string { return testutil.FIFODir(t, channel.Names(cpus)...) }

// loopback makes what a test with the agent (or a stand-in) on this
// machine needs: a private ftrace instance, the number of its CPUs and
// their FIFO directory.
func loopback(t *testing.T, name string) (inst string, cpus int, dir string) {
	t.Helper()
	inst = testutil.Instance(t, name)
	cpus = testutil.InstanceCPUs(t, inst)
	return inst, cpus, fifoDir(t, cpus)
}

type result struct {
	sum collect.Summary
	err error
}

func runAsync(ctx context.Context, cfg collect.Config) <-chan result {
	done := make(chan result, 1)
	go func() {
		sum, err := collect.Run(ctx, cfg)
		done <- result{sum, err}
	}()
	return done
}

// openWriter opens CPU cpu's data FIFO for writing, as the guest side does,
// once the collector holds it open; it fails the test if Run returns first.
func openWriter(t *testing.T, dir string, cpu int, done <-chan result) *os.File {
	t.Helper()
	return waitWriter(t, dir, cpu, func() {
		select {
		case r := <-done:
			t.Fatalf("Run returned before opening its FIFOs: %v", r.err)
		default:
		}
	})
}

// waitWriter retries a non-blocking open for writing, calling check
// between tries, until the collector has opened the FIFO.
func waitWriter(t *testing.T, dir string, cpu int, check func()) *os.File {
	t.Helper()
	_, path := fifo.Paths(dir, channel.Data(cpu))
	for {
		fd, err := sys.Open(path, sys.FIFOWriteNonblock, 0)
		if err == nil {
			if err := sys.SetNonblock(fd, false); err != nil {
				t.Fatal(err)
			}
			return os.NewFile(uintptr(fd), path)
		}
		if !errors.Is(err, sys.ENXIO) {
			t.Fatal(err)
		}
		check()
		time.Sleep(10 * time.Millisecond)
	}
}

// TestCollectOddSizesAndGarbage feeds a stream that is neither whole pages
// nor ring-buffer data: the file keeps the whole pages, the tail is cut and
// reported, and the page reader's complaint reaches the summary.
func TestCollectOddSizesAndGarbage(t *testing.T) {
	testutil.CheckFDs(t)
	dir := fifoDir(t, 2)
	out := filepath.Join(t.TempDir(), "capture")
	var progress bytes.Buffer
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := runAsync(ctx, collect.Config{Dir: dir, Out: out, Progress: &progress})

	w := openWriter(t, dir, 0, done)
	var sent []byte
	for i, n := range []int{1, 4095, 3000, 7, 1900} {
		chunk := bytes.Repeat([]byte{0xff - byte(i)}, n)
		if _, err := w.Write(chunk); err != nil {
			t.Fatal(err)
		}
		sent = append(sent, chunk...)
	}
	w.Close()
	cancel() // Run drains what the FIFO holds before it returns
	r := <-done
	if r.err != nil {
		t.Fatalf("Run: %v", r.err)
	}

	if len(r.sum.CPUs) != 2 {
		t.Fatalf("summary has %d CPUs, want 2", len(r.sum.CPUs))
	}
	c := r.sum.CPUs[0]
	if c.Bytes != 8192 || c.Dropped != int64(len(sent))-8192 {
		t.Errorf("CPU 0 kept %d bytes and cut %d, want 8192 and %d", c.Bytes, c.Dropped, len(sent)-8192)
	}
	got, err := os.ReadFile(filepath.Join(out, "cpu0.raw"))
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, sent[:8192]) {
		t.Errorf("cpu0.raw holds %d bytes that are not the first 8192 bytes sent", len(got))
	}
	if c.Stats.CorruptPages != 2 || len(c.Bad) != 2 || !errors.Is(c.Bad[0].Err, ringbuf.ErrCorrupt) || c.Stats.Events != 0 {
		t.Errorf("page reader on garbage: %d corrupt pages %v, %d events; want both pages corrupt (ErrCorrupt), no events",
			c.Stats.CorruptPages, c.Bad, c.Stats.Events)
	}
	if c1 := r.sum.CPUs[1]; c1.Bytes != 0 || c1.ScanErr != nil {
		t.Errorf("CPU 1 (silent): got %d bytes and %v, want 0 and no error", c1.Bytes, c1.ScanErr)
	}

	var text strings.Builder
	if err := r.sum.Write(&text); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"cut a trailing partial page of 811 bytes", "page 0 of cpu0.raw (offset 0) is corrupt", "page 1 of cpu0.raw (offset 4096) is corrupt"} {
		if !strings.Contains(text.String(), want) {
			t.Errorf("summary does not say %q:\n%s", want, text.String())
		}
	}
	if !strings.Contains(progress.String(), "cpu0 ") || !strings.HasSuffix(progress.String(), "\n") {
		t.Errorf("progress output lacks its final line: %q", progress.String())
	}
}

func TestCollectRefusesOverwrite(t *testing.T) {
	testutil.CheckFDs(t)
	dir := fifoDir(t, 1)
	out := t.TempDir()
	old := filepath.Join(out, "cpu0.raw")
	stale := filepath.Join(out, "cpu7.raw")
	other := filepath.Join(out, "notes.txt")
	for _, p := range []string{old, stale, other} {
		if err := os.WriteFile(p, []byte("earlier"), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel() // nothing to wait for: open, drain, stop

	_, err := collect.Run(ctx, collect.Config{Dir: dir, Out: out})
	if !errors.Is(err, collect.ErrExists) {
		t.Fatalf("Run into an earlier capture: got %v, want an error wrapping ErrExists", err)
	}
	if b, _ := os.ReadFile(old); string(b) != "earlier" {
		t.Errorf("Run without Force changed cpu0.raw to %q", b)
	}

	sum, err := collect.Run(ctx, collect.Config{Dir: dir, Out: out, Force: true})
	if err != nil {
		t.Fatalf("Run with Force: %v", err)
	}
	if len(sum.CPUs) != 1 || sum.CPUs[0].Bytes != 0 {
		t.Errorf("Run with Force: summary %+v, want one empty CPU", sum.CPUs)
	}
	if st, err := os.Stat(old); err != nil || st.Size() != 0 {
		t.Errorf("cpu0.raw after Run with Force: %v, %v; want a new empty file", st, err)
	}
	if _, err := os.Stat(stale); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("the earlier capture's cpu7.raw survived Run with Force: %v", err)
	}
	if b, _ := os.ReadFile(other); string(b) != "earlier" {
		t.Errorf("Run with Force touched a file that is not a capture file: %q", b)
	}
}

func TestCollectNoFIFOs(t *testing.T) {
	testutil.CheckFDs(t)
	_, err := collect.Run(context.Background(), collect.Config{Dir: t.TempDir(), Out: t.TempDir()})
	if err == nil || !strings.Contains(err.Error(), "vtrace host setup") {
		t.Errorf("Run without FIFOs: got %v, want an error pointing to vtrace host setup", err)
	}
}

// TestCollectStartFailsCleanly: with Start and nobody reading the control
// FIFO, Run fails after the order timeout and leaves no capture behind.
func TestCollectStartFailsCleanly(t *testing.T) {
	testutil.CheckFDs(t)
	dir := fifoDir(t, 1)
	out := filepath.Join(t.TempDir(), "capture")
	_, err := collect.Run(context.Background(), collect.Config{Dir: dir, Out: out, Start: true, OrderTimeout: 200 * time.Millisecond})
	if err == nil || !strings.Contains(err.Error(), "no reader") {
		t.Fatalf("Run with Start and no agent: got %v, want a no-reader error", err)
	}
	if _, err := os.Stat(filepath.Join(out, "cpu0.raw")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("a failed start left cpu0.raw behind: %v", err)
	}
}

// TestCollectDrainBounded: with Start, a stream that never goes quiet ends
// the drain at DrainTimeout, and the summary says so.
func TestCollectDrainBounded(t *testing.T) {
	testutil.CheckFDs(t)
	dir := fifoDir(t, 1)
	// Someone reads the orders, as qemu does.
	ctl, err := sys.Open(filepath.Join(dir, channel.Ctl+".in"), sys.FIFOReadNonblock, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer sys.Close(ctl)
	ctx, cancel := context.WithCancel(context.Background())
	done := runAsync(ctx, collect.Config{Dir: dir, Out: filepath.Join(t.TempDir(), "capture"), Start: true,
		Settle: time.Hour, DrainTimeout: 300 * time.Millisecond})
	wrote := feed(openWriter(t, dir, 0, done), 4096)
	// End the capture only once the start order is out: before it, an
	// interrupted Run rightly reports that the start was not sent.
	waitOrder(t, ctl, "1\n")
	cancel()
	r := <-done
	if r.err != nil {
		t.Fatalf("Run: %v", r.err)
	}
	if err := <-wrote; err != nil {
		t.Fatal(err)
	}
	if !slices.ContainsFunc(r.sum.Notes, func(n string) bool { return strings.Contains(n, "still streaming") }) {
		t.Errorf("summary notes %q do not say the stream was still flowing", r.sum.Notes)
	}
	if c := r.sum.CPUs[0]; c.Bytes%4096 != 0 || c.ScanErr != nil {
		t.Errorf("CPU 0: %d bytes, page reader %v; want whole empty pages", c.Bytes, c.ScanErr)
	}
}

// waitOrder reads the control FIFO until the bare order want has come (after
// the handshake the collector tries first).
func waitOrder(t *testing.T, ctl int, want string) {
	t.Helper()
	var got []byte
	buf := make([]byte, 512)
	deadline := time.Now().Add(30 * time.Second)
	for !bytes.Contains(got, []byte(want)) {
		if time.Now().After(deadline) {
			t.Fatalf("no order %q on the control FIFO; read %q", want, got)
		}
		n, err := sys.Read(ctl, buf)
		if n > 0 {
			got = append(got, buf[:n]...)
			continue
		}
		if err != nil && !errors.Is(err, sys.EAGAIN) {
			t.Fatal(err)
		}
		if _, _, err := sys.Poll(ctl, sys.In, nil, 100*time.Millisecond); err != nil {
			t.Fatal(err)
		}
	}
}
