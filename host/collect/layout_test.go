package collect_test

// The page layout of a capture is the one of the directory the agent
// streams, asked for again at every start. This machine's kernel refuses
// to change buffer_subbuf_size_kb (EPERM), so a scripted agent speaking
// proto/wire over the real FIFOs stands in for one whose instance has
// 16 KiB sub-buffers: its handshake and its metadata before the start
// describe the root's 4 KiB pages, and only after the start does it say
// (header_page) and send 16 KiB pages.

import (
	"bytes"
	"context"
	"encoding/binary"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/vtrace/vtrace/host/collect"
	"github.com/vtrace/vtrace/host/fifo"
	"github.com/vtrace/vtrace/internal/testutil"
	"github.com/vtrace/vtrace/proto/channel"
	"github.com/vtrace/vtrace/proto/wire"
)

// subbufAgent is a scripted agent of one CPU whose recordings stream pages
// of pageAfter bytes while its handshake says 4096.
type subbufAgent struct {
	t         *testing.T
	in, out   *os.File // the control channel, as qemu holds it
	data      *os.File // trace-path-cpu0.out, written
	demux     wire.Demux
	items     []wire.Item
	items0    map[wire.MetaKind][]byte // metadata before a start
	print     []byte                   // events/ftrace/print/format
	pageAfter int                      // page size of the recordings
	events    int                      // print events per recording
	started   bool
}

// headerPage is the root's events/header_page with its data size changed
// to that of a page of size bytes.
func headerPage(t *testing.T, root string, size int) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(root, "events", "header_page"))
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Contains(b, []byte("size:4080;")) {
		t.Fatalf("header_page of %s has no 4 KiB data field:\n%s", root, b)
	}
	return bytes.Replace(b, []byte("size:4080;"), fmt.Appendf(nil, "size:%d;", size-16), 1)
}

func (a *subbufAgent) next() wire.Message {
	for len(a.items) == 0 {
		a.in.SetReadDeadline(time.Now().Add(time.Minute)) // a guard, not a measure
		buf := make([]byte, 1<<16)
		n, err := a.in.Read(buf)
		if err != nil {
			return nil // the test is over
		}
		a.items = a.demux.Feed(buf[:n])
	}
	it := a.items[0]
	a.items = a.items[1:]
	if it.Frame == nil {
		return a.next()
	}
	m, err := wire.Decode(it.Frame)
	if err != nil {
		a.t.Errorf("agent: decode: %v", err)
		return a.next()
	}
	return m
}

func (a *subbufAgent) send(m wire.Message) {
	b, err := wire.AppendMessage(nil, m)
	if err == nil {
		_, err = a.out.Write(b)
	}
	if err != nil {
		a.t.Errorf("agent: send %v: %v", m.Type(), err)
	}
}

// meta answers a MetaRequest: the headers of the page size in use.
func (a *subbufAgent) meta(req *wire.MetaRequest, root string) {
	n := uint64(0)
	var errs []string
	for _, k := range req.Items {
		var data []byte
		name := ""
		switch {
		case k == wire.MetaHeaderPage && a.started:
			data = headerPage(a.t, root, a.pageAfter)
		case k == wire.MetaFormat:
			data, name = a.print, "ftrace/print"
		default:
			data = a.items0[k]
		}
		if data == nil {
			errs = append(errs, k.String()+": none here")
			continue
		}
		a.send(&wire.MetaChunk{ID: req.ID, Kind: k, Name: name, Total: uint64(len(data)), Data: data, Last: true})
		n++
	}
	a.send(&wire.MetaEnd{ID: req.ID, Items: n, Errors: errs})
}

// pages are a.events print events "vtrace-subbuf-N" in pages of
// a.pageAfter bytes, the last one partly filled.
func (a *subbufAgent) pages() []byte {
	var out []byte
	page := make([]byte, a.pageAfter)
	off := 16
	flush := func() {
		binary.LittleEndian.PutUint64(page, 1_000_000)
		binary.LittleEndian.PutUint64(page[8:], uint64(off-16))
		out = append(out, page...)
		page = make([]byte, a.pageAfter)
		off = 16
	}
	for i := range a.events {
		text := fmt.Sprintf("vtrace-subbuf-%d\n\x00", i)
		payload := make([]byte, 16+len(text)+(4-(16+len(text))%4)%4)
		binary.LittleEndian.PutUint16(payload, 5) // ftrace:print's id on this kernel is checked below
		binary.LittleEndian.PutUint32(payload[4:], 1)
		copy(payload[16:], text)
		if off+4+len(payload) > a.pageAfter {
			flush()
		}
		binary.LittleEndian.PutUint32(page[off:], uint32(len(payload)/4)|1<<5)
		copy(page[off+4:], payload)
		off += 4 + len(payload)
	}
	flush()
	return out
}

// run obeys the host until the channel closes.
func (a *subbufAgent) run(root string) {
	for {
		switch m := a.next().(type) {
		case nil:
			return
		case *wire.Hello:
			a.send(&wire.HelloReply{ID: m.ID, Version: wire.Version, AgentVersion: "scripted", CPUs: []uint32{0},
				PageSize: 4096, Clock: "local", Release: "6.18-subbuf", State: wire.StateIdle})
		case *wire.MetaRequest:
			a.meta(m, root)
		case *wire.Start:
			a.started = true
			a.send(&wire.StartReply{ID: m.ID})
			if _, err := a.data.Write(a.pages()); err != nil {
				a.t.Errorf("agent: write pages: %v", err)
			}
		case *wire.Stop:
			a.started = false
			a.send(&wire.StopReply{ID: m.ID, CPUs: []wire.CPUStats{{CPU: 0, ReadEvents: uint64(a.events)}}})
		}
	}
}

// TestCollectPageLayoutOfStreamedDir: the agent's handshake and early
// metadata say 4 KiB pages, the directory it streams has 16 KiB ones: the
// capture is cut and read in 16 KiB pages, OUT/meta/events/header_page is
// the streamed directory's, and trace-cmd reads every event of trace.dat.
// A second capture, whose recording streams 8 KiB pages, gets its own.
func TestCollectPageLayoutOfStreamedDir(t *testing.T) {
	tc := testutil.NeedProgram(t, "trace-cmd", "trace-cmd")
	root := testutil.Tracefs(t)
	print, err := os.ReadFile(filepath.Join(root, "events", "ftrace", "print", "format"))
	if err != nil || !bytes.Contains(print, []byte("ID: 5\n")) {
		t.Fatalf("events/ftrace/print/format: %v; want ID 5 (the pages here are built with it):\n%s", err, print)
	}
	headerEvent, err := os.ReadFile(filepath.Join(root, "events", "header_event"))
	if err != nil {
		t.Fatal(err)
	}
	dir := fifoDir(t, 1)
	ctlIn, ctlOut := fifo.Paths(dir, channel.Ctl)
	_, data := fifo.Paths(dir, channel.Data(0))
	a := &subbufAgent{t: t, print: print, events: 3000, items0: map[wire.MetaKind][]byte{
		wire.MetaHeaderPage: headerPage(t, root, 4096), wire.MetaHeaderEvent: headerEvent,
		wire.MetaTraceClock: []byte("[local] global\n"), wire.MetaUname: []byte("Linux guest 6.18-subbuf\n"),
		wire.MetaSavedCmdlines: []byte("1 subbuf-writer\n"),
	}}
	for _, f := range []struct {
		p    **os.File
		path string
	}{{&a.in, ctlIn}, {&a.out, ctlOut}, {&a.data, data}} {
		if *f.p, err = os.OpenFile(f.path, os.O_RDWR, 0); err != nil {
			t.Fatal(err)
		}
	}
	var wg sync.WaitGroup
	wg.Add(1)
	go func() { defer wg.Done(); a.run(root) }()
	t.Cleanup(func() { a.in.Close(); a.out.Close(); a.data.Close(); wg.Wait() })

	for _, page := range []int{16384, 8192} {
		a.pageAfter = page
		out := filepath.Join(t.TempDir(), "capture")
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan result, 1)
		go func() {
			sum, err := collect.RunStarted(ctx, collect.Config{Dir: dir, Out: out, Start: true, Settle: 200 * time.Millisecond}, cancel)
			done <- result{sum, err}
		}()
		r := <-done
		if r.err != nil {
			t.Fatalf("%d-byte pages: Run: %v", page, r.err)
		}
		var text strings.Builder
		r.sum.Write(&text)
		c := r.sum.CPUs[0]
		want := int64(len(a.pages()) / page)
		if r.sum.PageSize != page || c.Bytes%int64(page) != 0 || c.Stats.Pages != want || c.Stats.Events != int64(a.events) || c.Stats.CorruptPages != 0 {
			t.Errorf("%d-byte pages: summary page size %d, %d bytes, %d pages (want %d), %d events, %d corrupt; want all %d events in good pages\n%s",
				page, r.sum.PageSize, c.Bytes, c.Stats.Pages, want, c.Stats.Events, c.Stats.CorruptPages, a.events, text.String())
		}
		hp, _ := os.ReadFile(filepath.Join(out, "meta", "events", "header_page"))
		if !bytes.Equal(hp, headerPage(t, root, page)) {
			t.Errorf("%d-byte pages: meta/events/header_page is not the streamed directory's:\n%s", page, hp)
		}
		rep, err := exec.Command(tc, "report", "-i", filepath.Join(out, "trace.dat")).CombinedOutput()
		if n := bytes.Count(rep, []byte(": vtrace-subbuf-")); err != nil || n != a.events {
			t.Errorf("%d-byte pages: trace-cmd report shows %d of %d events (%v):\n%.1500s", page, n, a.events, err, rep)
		}
	}
}
