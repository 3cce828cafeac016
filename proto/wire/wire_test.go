package wire

import (
	"bytes"
	"encoding/binary"
	"errors"
	"reflect"
	"strings"
	"testing"
)

// realStats is a guest's per_cpu/cpu0/stats, as the kernel prints it.
const realStats = "entries: 1520\noverrun: 0\ncommit overrun: 0\nbytes: 60716\n" +
	"oldest event ts:  4312.617583\nnow ts:  4318.113906\ndropped events: 0\nread events: 0\n"

func sampleSettings() Settings {
	return Settings{
		Events:    []string{"sched:sched_switch", "sched:sched_wakeup", "irq"},
		Filters:   []Filter{{Event: "sched:sched_switch", Expr: `prev_comm ~ "stress*" && next_pid != 0`}, {Event: "irq", Expr: "irq == 11"}},
		BufferKiB: 4096,
		Clock:     "x86-tsc",
		Instance:  "vtrace",
	}
}

func sampleCPUs() []CPUStats {
	return []CPUStats{
		{CPU: 0, Entries: 1520, Bytes: 60716, OldestEventTS: 4312617583000, NowTS: 4318113906000, BytesSent: 1 << 20, PagesSent: 256, Raw: realStats},
		{CPU: 3, Entries: 7, Overrun: 12345, CommitOverrun: 1, DroppedEvents: 2, ReadEvents: 3, NowTS: ^uint64(0)},
	}
}

// samples holds a typical value of every message; they also seed the fuzzers.
func samples() map[string]Message {
	return map[string]Message{
		"hello":          &Hello{ID: 1, Versions: []uint8{1, 2}, Host: "vtrace", HostVersion: "0.3.0"},
		"hello-reply":    &HelloReply{ID: 1, Version: 1, AgentVersion: "0.3.0", CPUs: []uint32{0, 1, 2, 3}, PageSize: 4096, Clock: "local", Release: "6.1.0-37-amd64", Instance: "vtrace", State: StateIdle},
		"start":          &Start{ID: 2, Settings: sampleSettings()},
		"start-empty":    &Start{ID: 2},
		"start-reply":    &StartReply{ID: 2},
		"start-error":    &StartReply{ID: 2, Error: "filter of sched:sched_switch: parse_error: Field not found\nprev_cmm == 1\n^"},
		"stop":           &Stop{ID: 3},
		"stop-reply":     &StopReply{ID: 3, CPUs: sampleCPUs()},
		"meta-request":   &MetaRequest{ID: 4, Items: []MetaKind{MetaHeaderPage, MetaHeaderEvent, MetaFormat, MetaKallsyms, MetaPrintkFormats, MetaTraceClock, MetaUname}},
		"meta-chunk":     &MetaChunk{ID: 4, Kind: MetaFormat, Name: "sched/sched_switch", Offset: 0, Total: 11, Data: []byte("name: sched"), Last: true},
		"meta-chunk-mid": &MetaChunk{ID: 4, Kind: MetaKallsyms, Offset: 65536, Total: 1 << 20, Data: bytes.Repeat([]byte("ffffffff81000000 T _text\n"), 100)},
		"meta-chunk-nil": &MetaChunk{ID: 4, Kind: MetaSavedTgids, Last: true},
		"meta-end":       &MetaEnd{ID: 4, Items: 1234, Errors: []string{"kallsyms: open /proc/kallsyms: permission denied"}},
		"stats":          &Stats{CPUs: sampleCPUs()},
		"status-request": &StatusRequest{ID: 5},
		"status":         &Status{ID: 5, State: StateRecording, Settings: sampleSettings(), CPUs: sampleCPUs(), AgentVersion: "0.3.0"},
		"error":          &Error{ID: 6, Code: CodeUnsupported, Message: "message type 200"},
	}
}

func TestRoundTrip(t *testing.T) {
	for name, m := range samples() {
		t.Run(name, func(t *testing.T) {
			b, err := AppendMessage(nil, m)
			if err != nil {
				t.Fatal(err)
			}
			var d Demux
			items := d.Feed(b)
			if len(items) != 1 || items[0].Frame == nil {
				t.Fatalf("Feed(%d bytes) = %+v, want one frame", len(b), items)
			}
			got, err := Decode(items[0].Frame)
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(got, m) {
				t.Errorf("round trip:\n got %+v\nwant %+v", got, m)
			}
		})
	}
}

func TestFrameLayout(t *testing.T) {
	b, err := AppendMessage(nil, &Stop{ID: 7})
	if err != nil {
		t.Fatal(err)
	}
	want := []byte{0xF6, 'V', 'T', Version, byte(TypeStop), 0, 13, 0, 0, 0}
	if !bytes.Equal(b[:10], want) {
		t.Errorf("header % x, want % x", b[:10], want)
	}
	payload := []byte{1, 8, 0, 0, 0, 7, 0, 0, 0, 0, 0, 0, 0}
	if !bytes.Equal(b[HeaderLen:len(b)-TrailerLen], payload) {
		t.Errorf("payload % x, want % x", b[HeaderLen:len(b)-TrailerLen], payload)
	}
	if len(b) != HeaderLen+len(payload)+TrailerLen {
		t.Errorf("frame of %d bytes", len(b))
	}
}

func TestDecodeVersionAndType(t *testing.T) {
	if _, err := Decode(&Frame{Version: Version + 1, Type: TypeStop}); !errors.Is(err, ErrVersion) {
		t.Errorf("newer version: %v, want ErrVersion", err)
	}
	if _, err := Decode(&Frame{Version: 0, Type: TypeStop}); !errors.Is(err, ErrVersion) {
		t.Errorf("version 0: %v, want ErrVersion", err)
	}
	if _, err := Decode(&Frame{Version: Version, Type: 200}); !errors.Is(err, ErrUnknownType) {
		t.Errorf("type 200: %v, want ErrUnknownType", err)
	}
}

// field encodes one TLV field by hand.
func field(tag byte, v []byte) []byte {
	b := append([]byte{tag}, binary.LittleEndian.AppendUint32(nil, uint32(len(v)))...)
	return append(b, v...)
}

func u64(x uint64) []byte { return binary.LittleEndian.AppendUint64(nil, x) }

func cat(bs ...[]byte) []byte { return bytes.Join(bs, nil) }

func TestUnknownFieldsIgnored(t *testing.T) {
	p := cat(field(1, u64(9)), field(99, []byte("from the future")), field(2, u64(1)), field(0, nil))
	var m Hello
	if err := m.UnmarshalBinary(p); err != nil {
		t.Fatal(err)
	}
	if want := (Hello{ID: 9, Versions: []uint8{1}}); !reflect.DeepEqual(m, want) {
		t.Errorf("got %+v, want %+v", m, want)
	}
}

func TestUnmarshalRejects(t *testing.T) {
	cpu := func(n uint64) []byte { return field(4, field(1, u64(n))) }
	many := func(n int, f []byte) []byte { return bytes.Repeat(f, n) }
	long := strings.Repeat("x", MaxString+1)
	for _, tc := range []struct {
		name string
		m    Message
		p    []byte
		want error
	}{
		{"truncated field header", &Stop{}, []byte{1, 8, 0}, ErrMalformed},
		{"length past end", &Stop{}, cat(field(1, u64(1)), []byte{1, 0xff, 0xff, 0xff, 0xff}), ErrMalformed},
		{"short integer", &Stop{}, field(1, []byte{1, 2, 3}), ErrMalformed},
		{"hello without versions", &Hello{}, field(1, u64(1)), ErrMalformed},
		{"hello version 300", &Hello{}, field(2, u64(300)), ErrMalformed},
		{"hello too many versions", &Hello{}, many(MaxVersions+1, field(2, u64(1))), ErrTooLarge},
		{"hello control char", &Hello{}, cat(field(2, u64(1)), field(3, []byte("vt\x1b[2J"))), ErrMalformed},
		{"hello not utf-8", &Hello{}, cat(field(2, u64(1)), field(3, []byte{0xff})), ErrMalformed},
		{"long string", &Error{}, field(3, []byte(long)), ErrTooLarge},
		{"reply no version", &HelloReply{}, field(1, u64(1)), ErrMalformed},
		{"reply cpu 4096", &HelloReply{}, cat(field(2, u64(1)), field(4, u64(4096))), ErrMalformed},
		{"reply cpu twice", &HelloReply{}, cat(field(2, u64(1)), field(4, u64(3)), field(4, u64(3))), ErrMalformed},
		{"reply too many cpus", &HelloReply{}, cat(field(2, u64(1)), many(MaxCPUs+1, field(4, u64(0)))), ErrTooLarge},
		{"reply page size 5000", &HelloReply{}, cat(field(2, u64(1)), field(5, u64(5000))), ErrMalformed},
		{"reply page size huge", &HelloReply{}, cat(field(2, u64(1)), field(5, u64(1<<40))), ErrMalformed},
		{"reply instance dotdot", &HelloReply{}, cat(field(2, u64(1)), field(8, []byte(".."))), ErrMalformed},
		{"reply clock slash", &HelloReply{}, cat(field(2, u64(1)), field(6, []byte("a/b"))), ErrMalformed},
		{"start bad event", &Start{}, field(2, field(1, []byte("sched:sched switch"))), ErrMalformed},
		{"start event three parts", &Start{}, field(2, field(1, []byte("a:b:c"))), ErrMalformed},
		{"start event empty system", &Start{}, field(2, field(1, []byte(":b"))), ErrMalformed},
		{"start filter newline", &Start{}, field(2, field(2, cat(field(1, []byte("irq")), field(2, []byte("a\nb"))))), ErrMalformed},
		{"start filter empty", &Start{}, field(2, field(2, field(1, []byte("irq")))), ErrMalformed},
		{"start nested garbage", &Start{}, field(2, []byte{1, 2}), ErrMalformed},
		{"start instance path", &Start{}, field(2, field(5, []byte("../x"))), ErrMalformed},
		{"stats cpu twice", &Stats{}, field(1, nil), nil}, // one CPU 0 entry is fine
		{"stats dup cpu", &Stats{}, cat(field(1, nil), field(1, nil)), ErrMalformed},
		{"stats cpu 5000", &Stats{}, field(1, field(1, u64(5000))), ErrMalformed},
		{"stats too many", &Stats{}, many(MaxCPUs+1, field(1, nil)), ErrTooLarge},
		{"status bad cpu", &Status{}, cpu(4096), ErrMalformed},
		{"chunk kind 0", &MetaChunk{}, field(7, u64(1)), ErrMalformed},
		{"chunk format without name", &MetaChunk{}, cat(field(2, u64(3)), field(7, u64(1))), ErrMalformed},
		{"chunk format path", &MetaChunk{}, cat(field(2, u64(3)), field(3, []byte("../../etc/passwd")), field(7, u64(1))), ErrMalformed},
		{"chunk format dotdot", &MetaChunk{}, cat(field(2, u64(3)), field(3, []byte("../x")), field(7, u64(1))), ErrMalformed},
		{"chunk named kallsyms", &MetaChunk{}, cat(field(2, u64(4)), field(3, []byte("a/b")), field(7, u64(1))), ErrMalformed},
		{"chunk past total", &MetaChunk{}, cat(field(2, u64(4)), field(5, u64(2)), field(6, []byte("abc"))), ErrMalformed},
		{"chunk offset past total", &MetaChunk{}, cat(field(2, u64(4)), field(4, u64(10)), field(5, u64(2))), ErrMalformed},
		{"chunk offset overflow", &MetaChunk{}, cat(field(2, u64(4)), field(4, u64(^uint64(0))), field(5, u64(^uint64(0))), field(6, []byte("abc"))), ErrTooLarge},
		{"chunk last too early", &MetaChunk{}, cat(field(2, u64(4)), field(5, u64(9)), field(6, []byte("abc")), field(7, u64(1))), ErrMalformed},
		{"chunk complete not last", &MetaChunk{}, cat(field(2, u64(4)), field(5, u64(3)), field(6, []byte("abc"))), ErrMalformed},
		{"chunk last is 2", &MetaChunk{}, cat(field(2, u64(4)), field(7, u64(2))), ErrMalformed},
		{"chunk total huge", &MetaChunk{}, cat(field(2, u64(4)), field(5, u64(1<<40))), ErrTooLarge},
		{"request too many", &MetaRequest{}, many(MaxItems+1, field(2, u64(1))), ErrTooLarge},
		{"request item 0", &MetaRequest{}, field(2, u64(0)), ErrMalformed},
		{"end too many errors", &MetaEnd{}, many(MaxErrors+1, field(3, []byte("x"))), ErrTooLarge},
		{"error code too big", &Error{}, field(2, u64(1<<32)), ErrMalformed},
		{"payload too big", &Stop{}, make([]byte, MaxFrame+1), ErrTooLarge},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.m.UnmarshalBinary(tc.p)
			if tc.want == nil {
				if err != nil {
					t.Fatalf("UnmarshalBinary: %v", err)
				}
				return
			}
			if !errors.Is(err, tc.want) {
				t.Fatalf("UnmarshalBinary = %v, want %v", err, tc.want)
			}
			if !strings.HasPrefix(err.Error(), "unmarshal "+tc.m.Type().String()+": ") {
				t.Errorf("error %q does not name the message", err)
			}
		})
	}
}

func TestMarshalRejects(t *testing.T) {
	for _, tc := range []struct {
		name string
		m    Message
		want error
	}{
		{"hello no versions", &Hello{}, ErrMalformed},
		{"bad event", &Start{Settings: Settings{Events: []string{"sched/sched_switch"}}}, ErrMalformed},
		{"too many events", &Start{Settings: Settings{Events: make([]string, MaxEvents+1)}}, ErrTooLarge},
		{"events over a frame", &Start{Settings: Settings{Events: slicesOf(MaxEvents, strings.Repeat("e", 200))}}, ErrTooLarge},
		{"chunk too big", &MetaChunk{Kind: MetaKallsyms, Total: MaxFrame, Data: make([]byte, MaxFrame), Last: true}, ErrTooLarge},
		{"stats dup cpu", &Stats{CPUs: []CPUStats{{CPU: 1}, {CPU: 1}}}, ErrMalformed},
		{"error escape", &Error{Message: "\x1b]0;pwned\x07"}, ErrMalformed},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := tc.m.MarshalBinary(); !errors.Is(err, tc.want) {
				t.Errorf("MarshalBinary = %v, want %v", err, tc.want)
			}
		})
	}
	// The largest chunk fits a frame with room to spare.
	c := &MetaChunk{ID: ^uint64(0), Kind: MetaFormat, Name: strings.Repeat("s", MaxName) + "/" + strings.Repeat("e", MaxName),
		Offset: 1, Total: MaxMetaItem, Data: make([]byte, MaxChunk)}
	if _, err := AppendMessage(nil, c); err != nil {
		t.Errorf("largest chunk: %v", err)
	}
}

func slicesOf(n int, s string) []string {
	ss := make([]string, n)
	for i := range ss {
		ss[i] = s
	}
	return ss
}

func TestStringers(t *testing.T) {
	for _, tc := range []struct{ got, want string }{
		{TypeMetaChunk.String(), "meta-chunk"},
		{Type(99).String(), "type-99"},
		{MetaSavedCmdlines.String(), "saved_cmdlines"},
		{MetaKind(0).String(), "meta-0"},
		{StateRecording.String(), "recording"},
		{State(0).String(), "state-0"},
	} {
		if tc.got != tc.want {
			t.Errorf("got %q, want %q", tc.got, tc.want)
		}
	}
	for ty := Type(0); ty < 255; ty++ {
		if m := New(ty); m != nil && m.Type() != ty {
			t.Errorf("New(%d).Type() = %d", ty, m.Type())
		}
	}
}
