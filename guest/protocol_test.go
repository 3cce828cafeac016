package guest_test

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/vtrace/vtrace/guest"
	"github.com/vtrace/vtrace/internal/sys"
	"github.com/vtrace/vtrace/internal/testutil"
	"github.com/vtrace/vtrace/internal/textlog"
	"github.com/vtrace/vtrace/proto/ringbuf"
	"github.com/vtrace/vtrace/proto/wire"
)

// runningAgent is the agent running in-process.
type runningAgent struct {
	stop context.CancelFunc // ends Run, as SIGTERM does
	done chan struct{}      // closed when Run returned
	err  error              // Run's, once done is closed
}

// startAgent runs the agent in-process with cfg (Tracefs and PortsDir
// set) until the test ends; then Run must have returned nil and every fd
// the agent opened must be closed.
func startAgent(t *testing.T, cfg guest.Config) *runningAgent {
	t.Helper()
	if cfg.StateDir == "" {
		cfg.StateDir = t.TempDir()
	}
	cfg.DrainTimeout = 20 * time.Second
	cfg.Version = "test"
	log := textlog.New(testWriter{t}, textlog.LevelDebug)
	fds := testutil.OpenFDs(t)
	a, err := guest.New(cfg, log)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	r := &runningAgent{stop: cancel, done: make(chan struct{})}
	go func() {
		r.err = a.Run(ctx, cfg.DrainTimeout, nil)
		close(r.done)
	}()
	t.Cleanup(func() {
		cancel()
		<-r.done
		if r.err != nil {
			t.Errorf("agent: %v", r.err)
		}
		if err := a.Close(); err != nil {
			t.Errorf("close the agent: %v", err)
		}
		testutil.SameFDs(t, fds)
	})
	return r
}

// protoHost is the host's side of the protocol: frames to .in, messages
// from .out.
type protoHost struct {
	*host
	out    *os.File
	msgs   chan wire.Message
	text   chan string // anything on .out that is not a frame
	nextID uint64
}

func newProtoHost(t *testing.T, dir, inst string, cpus []int) *protoHost {
	t.Helper()
	h := &protoHost{host: newHost(t, dir, inst, cpus), msgs: make(chan wire.Message, 1024), text: make(chan string, 16)}
	var err error
	if h.out, err = os.OpenFile(filepath.Join(dir, "agent-ctl-path.out"), os.O_RDWR, 0); err != nil {
		t.Fatal(err)
	}
	go func() {
		r := wire.NewReader(h.out)
		for {
			it, err := r.Next()
			if err != nil {
				close(h.msgs)
				return
			}
			switch {
			case it.Frame != nil:
				m, err := wire.Decode(it.Frame)
				if err != nil {
					h.text <- "undecodable frame: " + err.Error()
					continue
				}
				h.msgs <- m
			case it.Err != nil:
				h.text <- "bad frame: " + it.Err.Error()
			default:
				h.text <- "text: " + string(it.Text)
			}
		}
	}()
	t.Cleanup(func() { h.out.Close() })
	return h
}

// call sends m (its id set) and returns the id.
func (h *protoHost) call(m wire.Message) uint64 {
	h.t.Helper()
	h.nextID++
	switch m := m.(type) {
	case *wire.Hello:
		m.ID = h.nextID
	case *wire.Start:
		m.ID = h.nextID
	case *wire.Stop:
		m.ID = h.nextID
	case *wire.MetaRequest:
		m.ID = h.nextID
	case *wire.StatusRequest:
		m.ID = h.nextID
	}
	if err := wire.WriteMessage(h.ctl, m); err != nil {
		h.t.Fatal(err)
	}
	return h.nextID
}

// next returns the next message other than Stats; anything else on .out
// fails the test.
func (h *protoHost) next() wire.Message {
	h.t.Helper()
	timeout := time.After(60 * time.Second)
	for {
		select {
		case m, ok := <-h.msgs:
			if !ok {
				h.t.Fatal("control port closed")
			}
			if _, ok := m.(*wire.Stats); ok {
				continue
			}
			return m
		case s := <-h.text:
			h.t.Fatalf("on agent-ctl-path.out: %s", s)
		case <-timeout:
			h.t.Fatal("no answer from the agent within 60 s")
		}
	}
}

func hello(t *testing.T, h *protoHost) *wire.HelloReply {
	t.Helper()
	id := h.call(&wire.Hello{Versions: []uint8{1}, Host: "test"})
	r, ok := h.next().(*wire.HelloReply)
	if !ok || r.ID != id {
		t.Fatalf("hello: got %#v, want a HelloReply with id %d", r, id)
	}
	return r
}

func start(t *testing.T, h *protoHost, s wire.Settings) string {
	t.Helper()
	id := h.call(&wire.Start{Settings: s})
	m := h.next()
	r, ok := m.(*wire.StartReply)
	if !ok || r.ID != id {
		t.Fatalf("start: got %#v, want a StartReply with id %d", m, id)
	}
	return r.Error
}

func stop(t *testing.T, h *protoHost) *wire.StopReply {
	t.Helper()
	id := h.call(&wire.Stop{})
	m := h.next()
	r, ok := m.(*wire.StopReply)
	if !ok || r.ID != id || r.Error != "" {
		t.Fatalf("stop: got %#v, want a StopReply with id %d and no error", m, id)
	}
	return r
}

// TestIntegrationProtocolHello: bare orders get no answer (the first bytes
// on .out are the HelloReply), and the reply describes the guest.
func TestIntegrationProtocolHello(t *testing.T) {
	inst, cpus, dir := loopback(t, "vtrace-guest-hello", 0)
	h := newProtoHost(t, dir, inst, cpus)
	startAgent(t, guest.Config{Tracefs: inst, PortsDir: dir})

	h.send("1\n")
	workload(t, cpus, 200*time.Millisecond)
	tracing(t, inst, false)
	h.send("0\n")
	h.caughtUp(inst)

	r := hello(t, h) // next fails on any byte that came before
	l, err := ringbuf.LayoutFromTracefs(inst)
	if err != nil {
		t.Fatal(err)
	}
	release, _ := sys.Release()
	clock, _ := os.ReadFile(filepath.Join(inst, "trace_clock"))
	var wantCPUs []uint32
	for _, c := range cpus {
		wantCPUs = append(wantCPUs, uint32(c))
	}
	if r.Version != 1 || r.AgentVersion != "test" || fmt.Sprint(r.CPUs) != fmt.Sprint(wantCPUs) ||
		int(r.PageSize) != l.PageSize || !strings.Contains(string(clock), "["+r.Clock+"]") || r.Clock == "" ||
		r.Release != release || r.Instance != filepath.Base(inst) || r.State != wire.StateIdle {
		t.Errorf("hello reply %+v; want version 1, agent test, CPUs %v, page %d, clock from %q, release %s, instance %s, idle",
			r, wantCPUs, l.PageSize, clock, release, filepath.Base(inst))
	}
	id := h.call(&wire.StatusRequest{})
	st, ok := h.next().(*wire.Status)
	if !ok || st.ID != id || st.State != wire.StateIdle || len(st.CPUs) != len(cpus) {
		t.Errorf("status: %+v, want idle with the last recording's %d CPUs", st, len(cpus))
	}
}

// TestIntegrationProtocolMeta: every format file the tracefs has arrives,
// whole, with the headers and the rest.
func TestIntegrationProtocolMeta(t *testing.T) {
	inst, cpus, dir := loopback(t, "vtrace-guest-meta", 0)
	root := filepath.Dir(filepath.Dir(inst))
	h := newProtoHost(t, dir, inst, cpus)
	startAgent(t, guest.Config{Tracefs: inst, PortsDir: dir})
	hello(t, h)

	kinds := []wire.MetaKind{wire.MetaHeaderPage, wire.MetaHeaderEvent, wire.MetaFormat, wire.MetaKallsyms,
		wire.MetaPrintkFormats, wire.MetaSavedCmdlines, wire.MetaSavedTgids, wire.MetaTraceClock, wire.MetaUname}
	id := h.call(&wire.MetaRequest{Items: kinds})
	var asm wire.MetaAssembler
	got := map[string][]byte{}
	var end *wire.MetaEnd
	for end == nil {
		switch m := h.next().(type) {
		case *wire.MetaChunk:
			if m.ID != id {
				t.Fatalf("chunk of request %d, want %d", m.ID, id)
			}
			it, err := asm.Add(m)
			if err != nil {
				t.Fatal(err)
			}
			if it != nil {
				got[it.Kind.String()+" "+it.Name] = it.Data
			}
		case *wire.MetaEnd:
			end = m
		default:
			t.Fatalf("got %#v during metadata", m)
		}
	}
	if err := asm.End(); err != nil {
		t.Fatal(err)
	}
	if len(end.Errors) > 0 {
		t.Errorf("meta end errors: %q", end.Errors)
	}
	if int(end.Items) != len(got) {
		t.Errorf("meta end says %d items, %d arrived", end.Items, len(got))
	}
	files, _ := filepath.Glob(filepath.Join(root, "events", "*", "*", "format"))
	for _, f := range files {
		name := filepath.Base(filepath.Dir(filepath.Dir(f))) + "/" + filepath.Base(filepath.Dir(f))
		want, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(got["format "+name], want) {
			t.Errorf("format %s: got %d bytes, want %d", name, len(got["format "+name]), len(want))
		}
	}
	if n := len(got) - len(files); n != len(kinds)-1 {
		t.Errorf("%d items besides %d formats, want %d", n, len(files), len(kinds)-1)
	}
	if _, err := ringbuf.ParseHeaderPage(got["header_page "]); err != nil {
		t.Errorf("header_page: %v", err)
	}
	ks := got["kallsyms "]
	if len(ks) < 1000 || bytes.HasPrefix(ks, []byte("0000000000000000 ")) {
		t.Errorf("kallsyms: %d bytes starting %q, want addresses", len(ks), ks[:min(len(ks), 40)])
	}
	if release, _ := sys.Release(); !strings.Contains(string(got["uname "]), release) {
		t.Errorf("uname %q, want release %s in it", got["uname "], release)
	}
	if !strings.Contains(string(got["trace_clock "]), "[") {
		t.Errorf("trace_clock %q", got["trace_clock "])
	}
}

// formatIDs maps event ids to "system:event" from the tracefs formats.
func formatIDs(t *testing.T, root string) map[uint16]string {
	t.Helper()
	files, _ := filepath.Glob(filepath.Join(root, "events", "*", "*", "id"))
	ids := map[uint16]string{}
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			continue
		}
		n, err := strconv.ParseUint(strings.TrimSpace(string(b)), 10, 16)
		if err == nil {
			ids[uint16(n)] = filepath.Base(filepath.Dir(filepath.Dir(f))) + ":" + filepath.Base(filepath.Dir(f))
		}
	}
	return ids
}

// eventNames counts, per CPU, the events received by name.
func (h *protoHost) eventNames(ids map[uint16]string) map[string]int {
	h.t.Helper()
	names := map[string]int{}
	for _, cpu := range h.cpus {
		h.mu.Lock()
		b := bytes.Clone(h.data[cpu].Bytes())
		h.mu.Unlock()
		_, err := ringbuf.Scan(h.layout, bytes.NewReader(b), func(r ringbuf.Record) error {
			names[ids[r.Type()]]++
			return nil
		})
		if err != nil {
			h.t.Errorf("cpu %d: %v", cpu, err)
		}
	}
	return names
}

// waitEvents waits until the CPUs' streams hold, together, as many events
// as the stop reply says the kernel gave out.
func (h *protoHost) waitEvents(r *wire.StopReply) {
	h.t.Helper()
	var want uint64
	for _, c := range r.CPUs {
		want += c.ReadEvents
	}
	deadline := time.Now().Add(30 * time.Second)
	for {
		var got uint64
		for _, cpu := range h.cpus {
			st, _ := h.received(cpu)
			got += uint64(st.Events)
		}
		if got == want {
			return
		}
		if time.Now().After(deadline) {
			h.t.Fatalf("received %d events, the stop reply says %d were read", got, want)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestIntegrationProtocolInstance: the host's events are recorded in the
// agent's own instance, which exists while recording and is gone after;
// two captures in a row with different settings.
func TestIntegrationProtocolInstance(t *testing.T) {
	inst, cpus, dir := loopback(t, "vtrace-guest-inst-base", 0)
	root := filepath.Dir(filepath.Dir(inst))
	name := "vtrace-guest-inst"
	own := filepath.Join(filepath.Dir(inst), name) // beside inst
	h := newProtoHost(t, dir, inst, cpus)
	startAgent(t, guest.Config{Tracefs: inst, PortsDir: dir, Instance: name})
	hello(t, h)
	ids := formatIDs(t, root)

	if e := start(t, h, wire.Settings{Events: []string{"sched:sched_switch"}, BufferKiB: 256}); e != "" {
		t.Fatalf("start: %s", e)
	}
	if !testutil.IsDir(own) {
		t.Fatalf("instance %s missing while recording", own)
	}
	// The watermark while a CPU holds events, 0 while every buffer is empty.
	if b, _ := os.ReadFile(filepath.Join(own, "buffer_percent")); strings.TrimSpace(string(b)) != "10" && strings.TrimSpace(string(b)) != "0" {
		t.Errorf("buffer_percent %q while recording, want 10 (or 0)", b)
	}
	workload(t, cpus, 500*time.Millisecond)
	r := stop(t, h)
	if testutil.IsDir(own) {
		t.Errorf("instance %s still there after the stop reply", own)
	}
	h.waitEvents(r)
	names := h.eventNames(ids)
	if names["sched:sched_switch"] == 0 || len(names) != 1 {
		t.Errorf("first capture: events %v, want sched_switch only", names)
	}

	// The second capture: other events, clock and buffer, in a fresh instance.
	for _, cpu := range cpus {
		h.mu.Lock()
		h.data[cpu].Reset()
		h.mu.Unlock()
	}
	s := wire.Settings{Events: []string{"sched:sched_process_exec", "sched:sched_process_exit"}, Clock: "mono", BufferKiB: 512}
	if e := start(t, h, s); e != "" {
		t.Fatalf("second start: %s", e)
	}
	if b, _ := os.ReadFile(filepath.Join(own, "trace_clock")); !strings.Contains(string(b), "[mono]") {
		t.Errorf("second capture: trace_clock %q, want mono", b)
	}
	if b, _ := os.ReadFile(filepath.Join(own, "buffer_size_kb")); !strings.HasPrefix(string(b), "51") { // rounded up to whole pages
		t.Errorf("second capture: buffer_size_kb %q, want 512 or a little more", b)
	}
	id := h.call(&wire.StatusRequest{})
	if st, ok := h.next().(*wire.Status); !ok || st.ID != id || st.State != wire.StateRecording || st.Settings.Clock != "mono" || len(st.CPUs) != len(cpus) {
		t.Errorf("status while recording: %+v", st)
	}
	workload(t, cpus, 300*time.Millisecond)
	r = stop(t, h)
	h.waitEvents(r)
	names = h.eventNames(ids)
	if names["sched:sched_process_exec"] == 0 || names["sched:sched_process_exit"] == 0 || len(names) != 2 {
		t.Errorf("second capture: events %v, want sched_process_exec and _exit only", names)
	}
	if testutil.IsDir(own) {
		t.Errorf("instance %s still there after the second stop", own)
	}
}

// snapshot is the part of tracefs a refused start must leave alone.
func snapshot(t *testing.T, root, inst, name string) string {
	t.Helper()
	var b strings.Builder
	for _, f := range []string{"set_event", "buffer_size_kb", "trace_clock", "buffer_percent"} {
		for _, d := range []string{root, inst} {
			v, err := os.ReadFile(filepath.Join(d, f))
			if err != nil {
				t.Fatal(err)
			}
			fmt.Fprintf(&b, "%s/%s: %s\n", d, f, v)
		}
	}
	fmt.Fprintf(&b, "instance %s exists: %t\n", name, testutil.IsDir(filepath.Join(root, "instances", name)))
	return b.String()
}

// TestIntegrationProtocolBadSettings: each bad setting gets an error naming
// it, and tracefs stays as it was.
func TestIntegrationProtocolBadSettings(t *testing.T) {
	inst, cpus, dir := loopback(t, "vtrace-guest-bad-base", 0)
	root := filepath.Dir(filepath.Dir(inst))
	name := "vtrace-guest-bad"
	other := testutil.Instance(t, "vtrace-guest-bad-other")
	h := newProtoHost(t, dir, inst, cpus)
	startAgent(t, guest.Config{Tracefs: inst, PortsDir: dir, Instance: name})
	hello(t, h)

	before := snapshot(t, root, inst, name)
	sw := []string{"sched:sched_switch"}
	for _, tc := range []struct {
		s    wire.Settings
		want []string
	}{
		{wire.Settings{Events: []string{"sched:no_such_event"}}, []string{"sched:no_such_event"}},
		{wire.Settings{Events: []string{"nosuchsystem"}}, []string{"nosuchsystem"}},
		{wire.Settings{Events: sw, Filters: []wire.Filter{{Event: "sched:sched_switch", Expr: "prev_pid >"}}}, []string{"sched:sched_switch", "prev_pid >", "Invalid"}},
		{wire.Settings{Events: sw, Filters: []wire.Filter{{Event: "sched", Expr: "bogus == 1"}}}, []string{"sched", "bogus == 1", "field"}},
		{wire.Settings{Events: sw, BufferKiB: testutil.MemTotalKiB(t) * 4}, []string{"buffer size", "cannot allocate memory"}},
		{wire.Settings{Events: sw, Clock: "no-such-clock"}, []string{"no-such-clock"}},
		{wire.Settings{Events: sw, Instance: filepath.Base(other)}, []string{filepath.Base(other), "not the agent's"}},
		{wire.Settings{Events: sw, Instance: filepath.Base(inst)}, []string{filepath.Base(inst), "--tracefs"}},
	} {
		e := start(t, h, tc.s)
		for _, w := range tc.want {
			if !strings.Contains(e, w) {
				t.Errorf("start %+v: error %q, want it to say %q", tc.s, e, w)
			}
		}
		if after := snapshot(t, root, inst, name); after != before {
			t.Errorf("start %+v changed tracefs:\nbefore:\n%s\nafter:\n%s", tc.s, before, after)
		}
	}
	// Still able to record after all that.
	if e := start(t, h, wire.Settings{Events: sw}); e != "" {
		t.Fatalf("good start after bad ones: %s", e)
	}
	stop(t, h)
	if after := snapshot(t, root, inst, name); after != before {
		t.Errorf("a capture changed tracefs:\nbefore:\n%s\nafter:\n%s", before, after)
	}
}

// TestIntegrationProtocolOverrun: a tiny buffer the host does not drain
// for a while overruns; the stop reply's counters are the kernel's.
func TestIntegrationProtocolOverrun(t *testing.T) {
	inst, cpus, dir := loopback(t, "vtrace-guest-overrun-base", 0)
	name := "vtrace-guest-overrun"
	own := filepath.Join(filepath.Dir(inst), name) // beside inst
	h := newProtoHost(t, dir, inst, cpus)
	startAgent(t, guest.Config{Tracefs: inst, PortsDir: dir, Instance: name, PipeSize: 64 << 10})
	hello(t, h)

	if e := start(t, h, wire.Settings{Events: []string{"sched", "irq"}, BufferKiB: 16}); e != "" {
		t.Fatalf("start: %s", e)
	}
	h.pause()
	workload(t, cpus, 2*time.Second)
	h.resume()
	// No more events: overrun and entries+read events are final.
	write(t, filepath.Join(own, "tracing_on"), "0")
	want := map[uint32]map[string]int64{}
	for _, cpu := range cpus {
		want[uint32(cpu)] = testutil.CPUStats(t, own, cpu)
	}
	r := stop(t, h)
	h.waitEvents(r)
	overrun := false
	for _, c := range r.CPUs {
		ks := want[c.CPU]
		if int64(c.Overrun) != ks["overrun"] || int64(c.ReadEvents) != ks["read events"]+ks["entries"] || c.Entries != 0 ||
			!strings.Contains(c.Raw, "overrun: "+strconv.FormatInt(ks["overrun"], 10)) {
			t.Errorf("cpu %d: stop reply %+v, kernel %v", c.CPU, c, ks)
		}
		if c.BytesSent == 0 || c.PagesSent == 0 {
			t.Errorf("cpu %d: %d bytes, %d pages sent", c.CPU, c.BytesSent, c.PagesSent)
		}
		st, err := h.received(int(c.CPU))
		if err != nil || (c.Overrun > 0) != (st.MissedPages > 0) {
			t.Errorf("cpu %d: overrun %d, %d pages flag missed events (%v)", c.CPU, c.Overrun, st.MissedPages, err)
		}
		overrun = overrun || c.Overrun > 0
	}
	if !overrun {
		t.Error("no CPU overran a 16 KiB buffer the host did not drain for 2 s")
	}
}

// TestIntegrationProtocolGarbage: broken frames and bare orders mixed on
// the control port: orders are obeyed, the agent answers afterwards.
func TestIntegrationProtocolGarbage(t *testing.T) {
	inst, cpus, dir := loopback(t, "vtrace-guest-garbage", 0)
	h := newProtoHost(t, dir, inst, cpus)
	startAgent(t, guest.Config{Tracefs: inst, PortsDir: dir})

	good, err := wire.AppendMessage(nil, &wire.StatusRequest{ID: 7})
	if err != nil {
		t.Fatal(err)
	}
	badPayload := bytes.Clone(good)
	badPayload[len(badPayload)-1] ^= 0xff
	badHeader := bytes.Clone(good)
	badHeader[12] ^= 0xff
	huge := wire.Frame{Version: 1, Type: wire.TypeStart}
	hugeHdr, _ := huge.Append(nil)
	hugeHdr[6], hugeHdr[9] = 0xff, 0x7f // length over MaxFrame, header checksum now wrong too
	cut := good[:len(good)-3]
	h.send("\xf6VT garbage\n1\n")
	h.send(string(badPayload) + "0\n" + string(badHeader) + "\n1\n" + string(hugeHdr) + "\n")
	workload(t, cpus, 200*time.Millisecond)
	tracing(t, inst, false)
	h.send(string(cut) + "\n0\n")
	h.caughtUp(inst)
	// Nothing so far was a sound frame: the agent has not said a word.
	// A bad message in a sound frame gets an Error, then Hello works.
	bad := wire.Frame{Version: 1, Type: wire.TypeStart, Payload: []byte{1, 9, 9}}
	b, _ := bad.Append(nil)
	h.send(string(b))
	if e, ok := h.next().(*wire.Error); !ok || e.Code != wire.CodeMalformed {
		t.Errorf("malformed start: %+v, want an Error with code malformed", e)
	}
	unknown := wire.Frame{Version: 1, Type: 200}
	b, _ = unknown.Append(nil)
	h.send(string(b))
	if e, ok := h.next().(*wire.Error); !ok || e.Code != wire.CodeUnsupported {
		t.Errorf("unknown type: %+v, want an Error with code unsupported", e)
	}
	hello(t, h)
}

// TestIntegrationProtocolHostNotReading: a host that never reads .out
// does not hold up the data streams.
func TestIntegrationProtocolHostNotReading(t *testing.T) {
	inst, cpus, dir := loopback(t, "vtrace-guest-noread", 0)
	h := newHost(t, dir, inst, cpus) // .out is never opened by the host
	startAgent(t, guest.Config{Tracefs: inst, PortsDir: dir, ReplyQueue: 16 << 10, StatsEvery: 5 * time.Millisecond})

	send := func(m wire.Message) {
		if err := wire.WriteMessage(h.ctl, m); err != nil {
			t.Fatal(err)
		}
	}
	send(&wire.Hello{ID: 1, Versions: []uint8{1}})
	send(&wire.Start{ID: 2})
	for i := 0; i < 200; i++ {
		send(&wire.StatusRequest{ID: uint64(10 + i)})
	}
	send(&wire.MetaRequest{ID: 3, Items: []wire.MetaKind{wire.MetaHeaderPage}})
	workload(t, cpus, time.Second)
	tracing(t, inst, false)
	send(&wire.Stop{ID: 4})
	h.caughtUp(inst)
}

// TestIntegrationProtocolSIGTERM: the agent exiting removes its instance
// and puts the default buffer's buffer_percent back.
func TestIntegrationProtocolSIGTERM(t *testing.T) {
	testutil.BuildVtrace(t) // before tracing: a build would fill the buffers
	inst, cpus, dir := loopback(t, "vtrace-guest-term-base", 0)
	h := newProtoHost(t, dir, inst, cpus)
	oldPercent, _ := os.ReadFile(filepath.Join(inst, "buffer_percent"))

	opts := testutil.AgentOptions{Tracefs: inst, Dir: dir, Instance: "vtrace-guest-term", Args: []string{"--verbose"}}
	a := testutil.StartAgent(t, opts)
	hello(t, h)
	if e := start(t, h, wire.Settings{Events: []string{"sched:sched_switch"}}); e != "" {
		t.Fatalf("start: %s", e)
	}
	if !testutil.IsDir(a.Own) {
		t.Fatalf("instance %s missing while recording", a.Own)
	}
	a.Stop(t)
	if testutil.IsDir(a.Own) {
		t.Errorf("instance %s still there after the agent exited", a.Own)
	}

	// Recording the default buffer (a bare order): buffer_percent is
	// lowered while recording and restored at exit.
	h.out.Close()
	a = testutil.StartAgent(t, opts)
	h.send("1\n")
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		if b, _ := os.ReadFile(filepath.Join(inst, "buffer_percent")); strings.TrimSpace(string(b)) == "10" || strings.TrimSpace(string(b)) == "0" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("buffer_percent not lowered to 10 (or 0, every buffer empty) while recording")
		}
	}
	a.Stop(t)
	if b, _ := os.ReadFile(filepath.Join(inst, "buffer_percent")); !bytes.Equal(b, oldPercent) {
		t.Errorf("buffer_percent %q after exit, want %q back", b, oldPercent)
	}
}
