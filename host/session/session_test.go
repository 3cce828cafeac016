package session_test

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"hash/crc32"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/vtrace/vtrace/host/fifo"
	"github.com/vtrace/vtrace/host/meta"
	"github.com/vtrace/vtrace/host/session"
	"github.com/vtrace/vtrace/internal/sys"
	"github.com/vtrace/vtrace/internal/testutil"
	"github.com/vtrace/vtrace/proto/channel"
	"github.com/vtrace/vtrace/proto/control"
	"github.com/vtrace/vtrace/proto/wire"
)

// guard bounds every wait of a test, against hangs; it is not a measure.
const guard = time.Minute

// fifoDir makes a control channel's FIFOs in a fresh directory.
func fifoDir(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	in, out := fifo.Paths(dir, channel.Ctl)
	for _, p := range []string{in, out} {
		if err := sys.Mkfifo(p, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

// peer is a scripted agent speaking proto/wire over the real FIFOs of a
// control channel, as the guest's side of qemu would see them. It stands
// in for the vtrace agent until that speaks the protocol.
type peer struct {
	t     *testing.T
	in    *os.File // reads what the host writes into .in
	out   *os.File // writes what the host reads from .out
	demux wire.Demux
	items []wire.Item
	reads [][]byte // every read of .in, as the C agent would see them
}

func newPeer(t *testing.T, dir string) *peer {
	t.Helper()
	in, out := fifo.Paths(dir, channel.Ctl)
	p := &peer{t: t}
	var err error
	// O_RDWR, as qemu holds them: opens never block, reads never end.
	if p.in, err = os.OpenFile(in, os.O_RDWR, 0); err != nil {
		t.Fatal(err)
	}
	if p.out, err = os.OpenFile(out, os.O_RDWR, 0); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { p.in.Close(); p.out.Close() })
	return p
}

// next returns the next frame's message from the host, or a text item as
// a nil message and its text.
func (p *peer) next() (wire.Message, []byte, error) {
	for len(p.items) == 0 {
		p.in.SetReadDeadline(time.Now().Add(guard))
		buf := make([]byte, 1<<16)
		n, err := p.in.Read(buf)
		if err != nil {
			return nil, nil, err
		}
		p.reads = append(p.reads, bytes.Clone(buf[:n]))
		p.items = p.demux.Feed(buf[:n])
	}
	it := p.items[0]
	p.items = p.items[1:]
	if it.Frame == nil {
		return nil, it.Text, it.Err
	}
	m, err := wire.Decode(it.Frame)
	return m, nil, err
}

// expect returns the next message, skipping text (the newline after Hello).
func (p *peer) expect() wire.Message {
	for {
		m, _, err := p.next()
		if err != nil {
			p.t.Errorf("peer: read the host's frame: %v", err)
			return nil
		}
		if m != nil {
			return m
		}
	}
}

// expectA reads the host's next message, which must be a T.
func expectA[T wire.Message](p *peer) (T, bool) {
	m, ok := p.expect().(T)
	if !ok {
		p.t.Errorf("peer: want a %T", m)
	}
	return m, ok
}

func (p *peer) send(m wire.Message) {
	b, err := wire.AppendMessage(nil, m)
	if err != nil {
		p.t.Errorf("peer: encode %v: %v", m.Type(), err)
		return
	}
	p.raw(b)
}

func (p *peer) raw(b []byte) {
	if _, err := p.out.Write(b); err != nil {
		p.t.Errorf("peer: write: %v", err)
	}
}

// hello answers the host's Hello.
func (p *peer) hello() {
	m, ok := expectA[*wire.Hello](p)
	if !ok {
		return
	}
	p.send(&wire.HelloReply{ID: m.ID, Version: 1, AgentVersion: "scripted", CPUs: []uint32{0, 1},
		PageSize: 4096, Clock: "local", Release: "6.1.0-test", State: wire.StateIdle})
}

// script runs fn as the peer in a goroutine; the test waits for it at the end.
func script(t *testing.T, dir string, fn func(p *peer)) *peer {
	p := newPeer(t, dir)
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		fn(p)
	}()
	t.Cleanup(wg.Wait)
	return p
}

func open(t *testing.T, dir string, opts session.Options) *session.Session {
	t.Helper()
	s, err := session.Open(context.Background(), dir, opts)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

// TestSessionScriptedPeerHandshake: stale bytes in .out (a frame cut short
// by an earlier agent) are discarded before Hello, and the HelloReply is
// read.
func TestSessionScriptedPeerHandshake(t *testing.T) {
	dir := fifoDir(t)
	p := script(t, dir, func(p *peer) { p.hello() })
	// Half a frame header: without the flush it would swallow the reply.
	p.raw(append(wire.Magic[:], 1, byte(wire.TypeStats)))
	s := open(t, dir, session.Options{HandshakeTimeout: guard})
	if s.LineProtocol() {
		t.Fatal("Open fell back to the line protocol with an agent that answered")
	}
	h := s.Hello()
	if h.AgentVersion != "scripted" || h.PageSize != 4096 || len(h.CPUs) != 2 || h.Release != "6.1.0-test" {
		t.Errorf("HelloReply: %+v", h)
	}
	// A second command is refused while this one holds the channel.
	_, err := session.Open(context.Background(), dir, session.Options{HandshakeTimeout: time.Millisecond})
	if !errors.Is(err, session.ErrBusy) {
		t.Errorf("second Open: %v, want ErrBusy", err)
	}
}

// TestSessionScriptedPeerLineProtocolFallback: a peer that never answers
// (the kernel's C agent) gets the line protocol's orders, each in one read
// of exactly "1\n" or "0\n" after the Hello, and settings are refused.
func TestSessionScriptedPeerLineProtocolFallback(t *testing.T) {
	dir := fifoDir(t)
	p := newPeer(t, dir)
	s := open(t, dir, session.Options{HandshakeTimeout: 100 * time.Millisecond})
	if !s.LineProtocol() {
		t.Fatal("Open did not fall back to the line protocol")
	}
	if !strings.Contains(s.LineProtocolNotice(), "no vtrace agent answered") {
		t.Errorf("notice: %q", s.LineProtocolNotice())
	}
	err := s.Start(context.Background(), wire.Settings{Events: []string{"sched"}})
	if !errors.Is(err, session.ErrLineProtocol) || !errors.Is(err, session.ErrNoSettings) || strings.Contains(err.Error(), "--") {
		t.Errorf("Start with settings in line-protocol mode: %v, want ErrLineProtocol and ErrNoSettings, naming no flag", err)
	}
	read := func() []byte {
		p.in.SetReadDeadline(time.Now().Add(guard))
		buf := make([]byte, 4096)
		n, err := p.in.Read(buf)
		if err != nil {
			t.Fatal(err)
		}
		return buf[:n]
	}
	// What the C agent reads: the Hello (not an order), then each order
	// in a read of its own.
	hello := read()
	if err := s.Start(context.Background(), wire.Settings{}); err != nil {
		t.Fatal(err)
	}
	orders := []string{string(read())}
	if _, err := s.Stop(context.Background(), time.Second); err != nil {
		t.Fatal(err)
	}
	orders = append(orders, string(read()))
	if orders[0] != "1\n" || orders[1] != "0\n" {
		t.Errorf("orders read: %q, want \"1\\n\" then \"0\\n\"", orders)
	}
	// An old vtrace agent parses lines: the Hello must be a garbage line
	// of its own, never an order, and end with its newline.
	var parser control.Parser
	for _, it := range parser.Feed(hello) {
		if it.Garbage == nil {
			t.Errorf("the Hello reads as order %v to a line parser", it.Order)
		}
	}
	if !bytes.HasSuffix(hello, []byte("\n")) {
		t.Errorf("the Hello does not end its line: %q", hello)
	}
}

// TestSessionScriptedPeerHelloNeverAnOrder: whatever the id, Hello plus
// its newline is garbage to a line-protocol parser.
func TestSessionScriptedPeerHelloNeverAnOrder(t *testing.T) {
	for id := uint64(0); id < 1<<16; id += 7 {
		b, err := wire.AppendMessage(nil, &wire.Hello{ID: id << 8, Versions: []uint8{wire.Version}, Host: "vtrace", HostVersion: "dev"})
		if err != nil {
			t.Fatal(err)
		}
		var parser control.Parser
		for _, it := range parser.Feed(append(b, '\n')) {
			if it.Garbage == nil {
				t.Fatalf("Hello id %d reads as order %v", id<<8, it.Order)
			}
		}
	}
}

// fixtureMeta is a real tracefs tree's metadata.
func fixtureMeta(t *testing.T) *meta.Set {
	t.Helper()
	s, err := meta.Load(filepath.Join(testutil.Repo(t), "host/meta/testdata/tracefs"))
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// serveMeta answers one MetaRequest with set's items in chunks of chunk bytes.
func (p *peer) serveMeta(set *meta.Set, chunk int) {
	req, ok := expectA[*wire.MetaRequest](p)
	if !ok {
		return
	}
	var items uint64
	sendItem := func(kind wire.MetaKind, name string, data []byte) {
		items++
		for off := 0; ; off += chunk {
			end := min(off+chunk, len(data))
			p.send(&wire.MetaChunk{ID: req.ID, Kind: kind, Name: name, Offset: uint64(off), Total: uint64(len(data)),
				Data: data[off:end], Last: end == len(data)})
			if end == len(data) {
				return
			}
		}
	}
	for _, k := range req.Items {
		switch k {
		case wire.MetaHeaderPage:
			sendItem(k, "", set.HeaderPage)
		case wire.MetaHeaderEvent:
			sendItem(k, "", set.HeaderEvent)
		case wire.MetaFormat:
			for _, sys := range set.Systems() {
				for _, ev := range set.EventNames(sys) {
					sendItem(k, sys+"/"+ev, set.Formats[sys][ev])
				}
			}
		case wire.MetaTraceClock:
			sendItem(k, "", []byte(set.Clock+"\n"))
		case wire.MetaUname:
			sendItem(k, "", []byte(set.Uname+"\n"))
		case wire.MetaSavedCmdlines:
			sendItem(k, "", set.Cmdlines)
		}
	}
	p.send(&wire.MetaEnd{ID: req.ID, Items: items, Errors: []string{"kallsyms: not in this test"}})
}

// TestSessionScriptedPeerMeta moves a real tracefs tree's metadata in
// small chunks, interleaved with Stats, into a Set that Save writes and
// Load reads back the same.
func TestSessionScriptedPeerMeta(t *testing.T) {
	want := fixtureMeta(t)
	dir := fifoDir(t)
	script(t, dir, func(p *peer) {
		p.hello()
		p.send(&wire.Stats{CPUs: []wire.CPUStats{{CPU: 0, Entries: 5}}})
		p.serveMeta(want, 100)
	})
	s := open(t, dir, session.Options{HandshakeTimeout: guard, ReplyTimeout: guard})
	got := &meta.Set{}
	errs, err := s.Meta(context.Background(), session.MetaBefore, got)
	if err != nil {
		t.Fatal(err)
	}
	if len(errs) != 1 || !strings.Contains(errs[0], "kallsyms") {
		t.Errorf("MetaEnd errors: %q", errs)
	}
	out := filepath.Join(t.TempDir(), "meta")
	if err := meta.Save(got, out); err != nil {
		t.Fatal(err)
	}
	back, err := meta.Load(out)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(back.HeaderPage, want.HeaderPage) || len(back.Formats) != len(want.Formats) || back.Clock != want.Clock || back.Uname != want.Uname {
		t.Errorf("metadata changed on the way: %d systems, clock %q, uname %q", len(back.Formats), back.Clock, back.Uname)
	}
	for sys, evs := range want.Formats {
		for ev, text := range evs {
			if !bytes.Equal(back.Formats[sys][ev], text) {
				t.Errorf("format %s/%s changed on the way", sys, ev)
			}
		}
	}
	if st := s.Stats(); len(st) != 1 || st[0].Entries != 5 {
		t.Errorf("Stats during the transfer: %+v", st)
	}
}

// TestSessionScriptedPeerStartError: the agent's refusal, naming what was
// wrong, is the error.
func TestSessionScriptedPeerStartError(t *testing.T) {
	dir := fifoDir(t)
	var got wire.Settings
	script(t, dir, func(p *peer) {
		p.hello()
		m, ok := expectA[*wire.Start](p)
		if !ok {
			return
		}
		got = m.Settings
		p.send(&wire.StartReply{ID: m.ID, Error: "event nosuch:event: not in available_events"})
	})
	s := open(t, dir, session.Options{HandshakeTimeout: guard, ReplyTimeout: guard})
	settings := wire.Settings{Events: []string{"sched:sched_switch", "irq", "nosuch:event"},
		Filters: []wire.Filter{{Event: "sched:sched_switch", Expr: "prev_pid != 0"}}, BufferKiB: 4096, Clock: "global"}
	err := s.Start(context.Background(), settings)
	if !errors.Is(err, session.ErrAgent) || !strings.Contains(err.Error(), "nosuch:event: not in available_events") {
		t.Errorf("Start: %v, want the agent's message", err)
	}
	s.Close()
	want := []string{"sched:sched_switch", "irq", "nosuch:event"}
	if strings.Join(got.Events, " ") != strings.Join(want, " ") || got.BufferKiB != 4096 || got.Clock != "global" ||
		len(got.Filters) != 1 || got.Filters[0].Expr != "prev_pid != 0" {
		t.Errorf("the agent got settings %+v", got)
	}
}

// TestSessionScriptedPeerStopWaitsForReply: Stop returns the StopReply's
// final stats, sent after Stats and a pause, and Watch passes Stats on.
func TestSessionScriptedPeerStopWaitsForReply(t *testing.T) {
	dir := fifoDir(t)
	stopped := make(chan struct{})
	script(t, dir, func(p *peer) {
		p.hello()
		p.send(&wire.Stats{CPUs: []wire.CPUStats{{CPU: 0, Overrun: 1}}})
		m, ok := expectA[*wire.Stop](p)
		if !ok {
			return
		}
		for i := range 100 {
			p.send(&wire.Stats{CPUs: []wire.CPUStats{{CPU: 0, Overrun: uint64(i)}}})
		}
		time.Sleep(50 * time.Millisecond) // the last pages being pushed
		close(stopped)
		p.send(&wire.StopReply{ID: m.ID, CPUs: []wire.CPUStats{{CPU: 0, ReadEvents: 42, Raw: "entries: 0\nread events: 42\n"}, {CPU: 1}}})
	})
	s := open(t, dir, session.Options{HandshakeTimeout: guard, ReplyTimeout: guard})
	seen := make(chan []wire.CPUStats, 1000)
	s.OnStats(func(c []wire.CPUStats) { seen <- c })
	ctx, cancel := context.WithCancel(context.Background())
	watched := make(chan error)
	go func() { watched <- s.Watch(ctx) }()
	<-seen
	cancel()
	if err := <-watched; err != nil {
		t.Fatalf("Watch: %v", err)
	}
	r, err := s.Stop(context.Background(), guard)
	if err != nil {
		t.Fatal(err)
	}
	select {
	case <-stopped:
	default:
		t.Error("Stop returned before the StopReply was sent")
	}
	if len(r.CPUs) != 2 || r.CPUs[0].ReadEvents != 42 {
		t.Errorf("StopReply: %+v", r)
	}
	if string(session.StatsText(r.CPUs[0])) != "entries: 0\nread events: 42\n" {
		t.Errorf("StatsText: %q", session.StatsText(r.CPUs[0]))
	}
}

// frame builds a frame around a payload made of raw TLV fields, so that a
// test can send what no encoder of proto/wire would.
func frame(typ wire.Type, fields ...any) []byte {
	var p []byte
	for i := 0; i < len(fields); i += 2 {
		tag := fields[i].(int)
		var v []byte
		switch x := fields[i+1].(type) {
		case int:
			v = binary.LittleEndian.AppendUint64(nil, uint64(x))
		case string:
			v = []byte(x)
		}
		p = append(p, byte(tag))
		p = binary.LittleEndian.AppendUint32(p, uint32(len(v)))
		p = append(p, v...)
	}
	f := wire.Frame{Version: 1, Type: typ, Payload: p}
	b, _ := f.Append(nil)
	return b
}

// TestSessionScriptedPeerHostile: a peer that sends what it should not
// gets a clear error, in bounded time, with nothing written anywhere.
func TestSessionScriptedPeerHostile(t *testing.T) {
	oversized := func() []byte {
		b := frame(wire.TypeMetaChunk)
		binary.LittleEndian.PutUint32(b[6:], wire.MaxFrame+1)
		binary.LittleEndian.PutUint32(b[10:], crc32c(b[:10]))
		return append(b, bytes.Repeat([]byte("x"), 1000)...)
	}
	for _, tc := range []struct {
		name string
		meta func(p *peer, id int) [][]byte // what the peer sends for the MetaRequest
		want string
	}{
		{"path in a format name", func(p *peer, id int) [][]byte {
			return [][]byte{frame(wire.TypeMetaChunk, 1, id, 2, int(wire.MetaFormat), 3, "../../etc/passwd", 5, 4, 6, "root", 7, 1)}
		}, "format name"},
		{"name on an item without one", func(p *peer, id int) [][]byte {
			return [][]byte{frame(wire.TypeMetaChunk, 1, id, 2, int(wire.MetaKallsyms), 3, "../x", 5, 4, 6, "root", 7, 1)}
		}, "named"},
		{"out of order", func(p *peer, id int) [][]byte {
			return [][]byte{
				frame(wire.TypeMetaChunk, 1, id, 2, int(wire.MetaUname), 4, 2, 5, 4, 6, "ab", 7, 1),
			}
		}, "offset"},
		{"gap", func(p *peer, id int) [][]byte {
			return [][]byte{
				frame(wire.TypeMetaChunk, 1, id, 2, int(wire.MetaUname), 5, 6, 6, "ab"),
				frame(wire.TypeMetaChunk, 1, id, 2, int(wire.MetaUname), 4, 4, 5, 6, 6, "ab", 7, 1),
			}
		}, "offset"},
		{"item too large", func(p *peer, id int) [][]byte {
			return [][]byte{frame(wire.TypeMetaChunk, 1, id, 2, int(wire.MetaUname), 5, 1<<20, 6, "ab")}
		}, "too large"},
		{"kind not asked for", func(p *peer, id int) [][]byte {
			return [][]byte{frame(wire.TypeMetaChunk, 1, id, 2, int(wire.MetaSavedTgids), 5, 2, 6, "ab", 7, 1)}
		}, "not asked for"},
		{"oversized frame", func(p *peer, id int) [][]byte { return [][]byte{oversized()} }, "too large"},
		{"garbage", func(p *peer, id int) [][]byte {
			return [][]byte{append(wire.Magic[:], bytes.Repeat([]byte{0xff}, 100)...)}
		}, "checksum"},
		{"end with an item unfinished", func(p *peer, id int) [][]byte {
			return [][]byte{
				frame(wire.TypeMetaChunk, 1, id, 2, int(wire.MetaUname), 5, 6, 6, "ab"),
				frame(wire.TypeMetaEnd, 1, id, 2, 1),
			}
		}, "ended after"},
		{"silence", func(p *peer, id int) [][]byte { return nil }, "no reply in time"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := fifoDir(t)
			script(t, dir, func(p *peer) {
				p.hello()
				req, ok := expectA[*wire.MetaRequest](p)
				if !ok {
					return
				}
				for _, b := range tc.meta(p, int(req.ID)) {
					p.raw(b)
				}
			})
			s := open(t, dir, session.Options{HandshakeTimeout: guard, ReplyTimeout: 2 * time.Second, MetaIdleTimeout: 2 * time.Second})
			set := &meta.Set{}
			_, err := s.Meta(context.Background(), []wire.MetaKind{wire.MetaFormat, wire.MetaKallsyms, wire.MetaUname}, set)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("Meta: %v, want an error saying %q", err, tc.want)
			}
			t.Logf("Meta: %v", err)
			if len(set.Formats) != 0 || set.Kallsyms != nil {
				t.Errorf("hostile metadata reached the Set: %+v", set)
			}
			ents, _ := os.ReadDir(dir)
			if len(ents) != 2 {
				t.Errorf("the FIFO directory holds %d entries, want its 2 FIFOs", len(ents))
			}
		})
	}
}

// TestSessionScriptedPeerFlood: a peer that floods Stats and garbage
// never answering gets a timeout, not a hang; one that floods and answers
// gets its answer read.
func TestSessionScriptedPeerFlood(t *testing.T) {
	for _, answer := range []bool{false, true} {
		dir := fifoDir(t)
		done := make(chan struct{})
		script(t, dir, func(p *peer) {
			p.hello()
			req, ok := expectA[*wire.StatusRequest](p)
			if !ok {
				return
			}
			stats := &wire.Stats{CPUs: []wire.CPUStats{{CPU: 0, Raw: strings.Repeat("x", 4000)}}}
			b, _ := wire.AppendMessage(nil, stats)
			b = append(b, append(wire.Magic[:], 0, 0, 0)...) // and garbage
			for i := 0; ; i++ {
				if i == 1000 && answer {
					p.send(&wire.Status{ID: req.ID, State: wire.StateRecording, AgentVersion: "flood"})
				}
				p.out.SetWriteDeadline(time.Now().Add(time.Second))
				if _, err := p.out.Write(b); err != nil {
					break // the host went away
				}
				select {
				case <-done:
					return
				default:
				}
			}
		})
		s := open(t, dir, session.Options{HandshakeTimeout: guard, ReplyTimeout: 2 * time.Second})
		st, err := s.Status(context.Background())
		close(done)
		s.Close()
		if answer && (err != nil || st.AgentVersion != "flood") {
			t.Errorf("Status amid a flood: %+v, %v", st, err)
		}
		if !answer && !errors.Is(err, session.ErrTimeout) {
			t.Errorf("Status from a peer that only floods: %v, want ErrTimeout", err)
		}
	}
}

// TestSessionScriptedPeerGarbageHandshake: frames that make no HelloReply
// are an error, not the silence of an agent that speaks only the line
// protocol.
func TestSessionScriptedPeerGarbageHandshake(t *testing.T) {
	dir := fifoDir(t)
	script(t, dir, func(p *peer) {
		p.expect()
		p.raw(frame(wire.TypeHelloReply, 1, 5, 2, 0)) // version 0
	})
	// Open waits out the timeout for a good reply after a bad one: long
	// enough for a slow peer, short enough for the test.
	_, err := session.Open(context.Background(), dir, session.Options{HandshakeTimeout: 3 * time.Second})
	if err == nil || !strings.Contains(err.Error(), "make no HelloReply") {
		t.Errorf("Open: %v, want an error about the bad reply", err)
	}
}

func TestCheckSettings(t *testing.T) {
	for _, tc := range []struct {
		settings wire.Settings
		bad      string
	}{
		{wire.Settings{Events: []string{"sched:sched_switch", "irq", "timer"}, BufferKiB: 512}, ""},
		{wire.Settings{Filters: []wire.Filter{{Event: "sched", Expr: ""}}}, "filter"},
		{wire.Settings{Events: []string{"../etc:passwd"}}, "event"},
		{wire.Settings{Clock: "a b"}, "clock"},
	} {
		err := session.CheckSettings(tc.settings)
		if (err != nil) != (tc.bad != "") || err != nil && (!strings.Contains(err.Error(), tc.bad) || !errors.Is(err, session.ErrSettings)) {
			t.Errorf("%+v: %v, want an error naming %q and wrapping ErrSettings", tc.settings, err, tc.bad)
		}
	}
	if got := session.SelectClock("[local] global counter", "global"); got != "local [global] counter" {
		t.Errorf("SelectClock: %q", got)
	}
}

func crc32c(b []byte) uint32 { return crc32.Checksum(b, crc32.MakeTable(crc32.Castagnoli)) }

// StatsText keeps the kernel's text but gives the recording's counters,
// which start at the recording's start where the text's start with the
// buffer.
func TestStatsTextRecordingCounters(t *testing.T) {
	raw := "entries: 3\noverrun: 9000\ncommit overrun: 1\nbytes: 4080\noldest event ts:  5153.034283\nnow ts:  5160.117010\ndropped events: 0\nread events: 123456\n"
	c := wire.CPUStats{Entries: 3, Overrun: 12, CommitOverrun: 0, DroppedEvents: 0, ReadEvents: 500, Raw: raw}
	want := "entries: 3\noverrun: 12\ncommit overrun: 0\nbytes: 4080\noldest event ts:  5153.034283\nnow ts:  5160.117010\ndropped events: 0\nread events: 500\n"
	if got := string(session.StatsText(c)); got != want {
		t.Errorf("StatsText:\n%s\nwant:\n%s", got, want)
	}
	c.Raw = ""
	if got := string(session.StatsText(c)); got != "entries: 3\noverrun: 12\ncommit overrun: 0\nbytes: 0\ndropped events: 0\nread events: 500\n" {
		t.Errorf("StatsText without the kernel's text: %q", got)
	}
}
