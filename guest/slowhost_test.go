package guest_test

import (
	"bufio"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/vtrace/vtrace/guest"
	"github.com/vtrace/vtrace/proto/wire"
)

// fakeKallsyms writes a kallsyms of about size bytes whose addresses are
// all zero (hidden) or not, and a kptr_restrict file holding restrict.
func fakeKallsyms(t *testing.T, size int, hidden bool, restrict string) (kallsyms, kptr string) {
	t.Helper()
	dir := t.TempDir()
	kallsyms, kptr = filepath.Join(dir, "kallsyms"), filepath.Join(dir, "kptr_restrict")
	f, err := os.Create(kallsyms)
	if err != nil {
		t.Fatal(err)
	}
	w := bufio.NewWriter(f)
	base := uint64(0xffffffff81000000)
	if hidden {
		base = 0
	}
	for i, n := 0, 0; n < size; i++ {
		addr := base
		if !hidden {
			addr += uint64(i) * 16
		}
		m, _ := fmt.Fprintf(w, "%016x T vtrace_test_symbol_%d\n", addr, i)
		n += m
	}
	if err := w.Flush(); err != nil {
		t.Fatal(err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	write(t, kptr, restrict+"\n")
	return kallsyms, kptr
}

// ctlReader reads the agent's frames from .out at the test's pace.
type ctlReader struct {
	t *testing.T
	f *os.File
	r *wire.Reader
}

func openCtlReader(t *testing.T, dir string) *ctlReader {
	t.Helper()
	f, err := os.OpenFile(filepath.Join(dir, "agent-ctl-path.out"), os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.Close() })
	return &ctlReader{t: t, f: f, r: wire.NewReader(f)}
}

// next returns the next message other than Stats.
func (c *ctlReader) next() wire.Message {
	c.t.Helper()
	for {
		c.f.SetReadDeadline(time.Now().Add(time.Minute))
		it, err := c.r.Next()
		if err != nil {
			c.t.Fatalf("read the agent's frames: %v", err)
		}
		if it.Frame == nil {
			c.t.Fatalf("on agent-ctl-path.out, not a frame: %q %v", it.Text, it.Err)
		}
		m, err := wire.Decode(it.Frame)
		if err != nil {
			c.t.Fatal(err)
		}
		if _, ok := m.(*wire.Stats); !ok {
			return m
		}
	}
}

func (c *ctlReader) hello(h *host) {
	c.t.Helper()
	if err := wire.WriteMessage(h.ctl, &wire.Hello{ID: 1, Versions: []uint8{1}, Host: "test"}); err != nil {
		c.t.Fatal(err)
	}
	if _, ok := c.next().(*wire.HelloReply); !ok {
		c.t.Fatal("no HelloReply")
	}
}

// kallsymsTransfer starts an agent whose kallsyms is a fake one of size
// bytes (fakeKallsyms) and asks for it; it returns once the first chunk
// came. The agent cannot push the whole item while the host does not read:
// the rest is read at the test's pace.
func kallsymsTransfer(t *testing.T, name string, size int, hidden bool, restrict string) (c *ctlReader, kptr string, a *runningAgent) {
	t.Helper()
	inst, cpus, dir := loopback(t, name, 0)
	h := newHost(t, dir, inst, cpus)
	c = openCtlReader(t, dir)
	kallsyms, kptr := fakeKallsyms(t, size, hidden, restrict)
	guest.SetKallsymsForTest(t, kallsyms, kptr)
	a = startAgent(t, guest.Config{Tracefs: inst, PortsDir: dir, ReplyQueue: 64 << 10})
	c.hello(h)
	if err := wire.WriteMessage(h.ctl, &wire.MetaRequest{ID: 2, Items: []wire.MetaKind{wire.MetaKallsyms}}); err != nil {
		t.Fatal(err)
	}
	if m, ok := c.next().(*wire.MetaChunk); !ok || m.Kind != wire.MetaKallsyms {
		t.Fatalf("got %#v, want a kallsyms MetaChunk", m)
	}
	return c, kptr, a
}

// TestIntegrationKallsymsRestoresBeforeSending: kptr_restrict, lowered to
// read kallsyms' addresses, is back before the host gets the first byte
// of it, however slowly the host reads the rest.
func TestIntegrationKallsymsRestoresBeforeSending(t *testing.T) {
	c, kptr, _ := kallsymsTransfer(t, "vtrace-guest-kptr", 8<<20, true, "2")
	if b, _ := os.ReadFile(kptr); strings.TrimSpace(string(b)) != "2" {
		t.Errorf("kptr_restrict %q while kallsyms is being sent, want 2 back", b)
	}
	for {
		if end, ok := c.next().(*wire.MetaEnd); ok {
			if end.Items != 1 {
				t.Errorf("MetaEnd: %d items, want 1 (errors %q)", end.Items, end.Errors)
			}
			break
		}
	}
	if b, _ := os.ReadFile(kptr); strings.TrimSpace(string(b)) != "2" {
		t.Errorf("kptr_restrict %q after kallsyms was sent, want 2", b)
	}
}

// TestIntegrationStopDuringSlowMeta: an agent sending metadata to a host
// that reads slowly but steadily (never long enough without progress to
// be given up) exits promptly when told to (Run's ctx ends, as on
// SIGTERM), not once the whole transfer is through.
func TestIntegrationStopDuringSlowMeta(t *testing.T) {
	// 48 MiB at 640 KiB/s: more than a minute to send, each frame within
	// a couple of seconds (the agent gives a host up after 5 s without).
	c, _, a := kallsymsTransfer(t, "vtrace-guest-slowmeta", 48<<20, false, "0")
	readerDone := make(chan struct{})
	stopReading := make(chan struct{})
	go func() { // the slow host: 64 KiB every 100 ms until told to stop
		defer close(readerDone)
		buf := make([]byte, 64<<10)
		tick := time.NewTicker(100 * time.Millisecond)
		defer tick.Stop()
		for {
			select {
			case <-stopReading:
				return
			case <-tick.C:
			}
			c.f.SetReadDeadline(time.Now().Add(100 * time.Millisecond))
			c.f.Read(buf)
		}
	}()
	defer func() { close(stopReading); <-readerDone }()
	time.Sleep(time.Second) // well into the transfer
	a.stop()
	// A guard, far below the transfer's length: not a measure.
	select {
	case <-a.done:
		if a.err != nil {
			t.Errorf("Run: %v", a.err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("the agent still sending metadata 30 s after it was told to stop")
	}
}
