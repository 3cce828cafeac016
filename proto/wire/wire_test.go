package wire

import (
	"bytes"
	"encoding/binary"
	"errors"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/vtrace/vtrace/proto/tracefs"
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
		SubbufKiB: 16,
	}
}

func sampleCPUs() []CPUStats {
	return []CPUStats{
		{CPU: 0, Entries: 1520, Bytes: 60716, OldestEventTS: 4312617583000, NowTS: 4318113906000, BytesSent: 1 << 20, PagesSent: 256, Raw: realStats},
		{CPU: 3, Entries: 7, Overrun: 12345, CommitOverrun: 1, DroppedEvents: 2, ReadEvents: 3, NowTS: ^uint64(0)},
	}
}

// samples holds a typical value of every message; the fuzzers start from them too.
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
		"hello-reply-unstreamed": &HelloReply{ID: 1, Version: 1, CPUs: []uint32{0, 2}, State: StateIdle,
			Unstreamed: []UnstreamedCPU{{CPU: 1, Reason: "offline"}, {CPU: 3, Reason: "find port trace-path-cpu3: not in /dev/virtio-ports"}}},
		"start-reply-cpus": &StartReply{ID: 2, CPUs: []uint32{0, 1, 2}, Unstreamed: []UnstreamedCPU{{CPU: 3, Reason: "offline"}}},
		"stop-reply-unstreamed": &StopReply{ID: 3, CPUs: sampleCPUs(),
			Unstreamed: []UnstreamedCPU{{CPU: 1, Reason: "came online during the recording: streamed from the next start"}}},
		"status-unstreamed": &Status{ID: 5, State: StateIdle, CPUs: sampleCPUs(), Unstreamed: []UnstreamedCPU{{CPU: 1, Reason: "offline"}}},
		"clock-probe":       &ClockProbe{ID: 7, Clock: "mono", Mark: true},
		"clock-reply":       &ClockReply{ID: 7, Clock: "mono", Received: 4318113906000, Sent: 4318113921000, Marked: true},
		"clock-refused":     &ClockReply{ID: 8, Clock: "local", Error: "trace clock local: not readable from user space"},
	}
}

func TestRoundTrip(t *testing.T) {
	t.Parallel()
	for name, m := range samples() {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
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
			if diff := cmp.Diff(m, got); diff != "" {
				t.Errorf("round trip (-want +got):\n%s", diff)
			}
		})
	}
}

func TestFrameLayout(t *testing.T) {
	t.Parallel()
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
	t.Parallel()
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

// tlv encodes one field (tag, length, value) by hand.
func tlv(tag byte, v []byte) []byte {
	b := append([]byte{tag}, binary.LittleEndian.AppendUint32(nil, uint32(len(v)))...)
	return append(b, v...)
}

func u64(x uint64) []byte { return binary.LittleEndian.AppendUint64(nil, x) }

func cat(bs ...[]byte) []byte { return bytes.Join(bs, nil) }

func TestUnknownFieldsIgnored(t *testing.T) {
	t.Parallel()
	p := cat(tlv(1, u64(9)), tlv(99, []byte("from the future")), tlv(2, u64(1)), tlv(0, nil))
	var m Hello
	if err := m.UnmarshalBinary(p); err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(Hello{ID: 9, Versions: []uint8{1}}, m); diff != "" {
		t.Errorf("decoded (-want +got):\n%s", diff)
	}
}

func TestUnmarshalRejects(t *testing.T) {
	t.Parallel()
	cpu := func(n uint64) []byte { return tlv(4, tlv(1, u64(n))) }
	many := func(n int, f []byte) []byte { return bytes.Repeat(f, n) }
	long := strings.Repeat("x", MaxString+1)
	for _, tc := range []struct {
		name string
		m    Message
		p    []byte
		want error
	}{
		{"truncated field header", &Stop{}, []byte{1, 8, 0}, ErrMalformed},
		{"length past end", &Stop{}, cat(tlv(1, u64(1)), []byte{1, 0xff, 0xff, 0xff, 0xff}), ErrMalformed},
		{"short integer", &Stop{}, tlv(1, []byte{1, 2, 3}), ErrMalformed},
		{"hello without versions", &Hello{}, tlv(1, u64(1)), ErrMalformed},
		{"hello version 300", &Hello{}, tlv(2, u64(300)), ErrMalformed},
		{"hello too many versions", &Hello{}, many(MaxVersions+1, tlv(2, u64(1))), ErrTooLarge},
		{"hello control char", &Hello{}, cat(tlv(2, u64(1)), tlv(3, []byte("vt\x1b[2J"))), ErrMalformed},
		{"hello not utf-8", &Hello{}, cat(tlv(2, u64(1)), tlv(3, []byte{0xff})), ErrMalformed},
		{"long string", &Error{}, tlv(3, []byte(long)), ErrTooLarge},
		{"reply no version", &HelloReply{}, tlv(1, u64(1)), ErrMalformed},
		{"reply cpu 5000", &HelloReply{}, cat(tlv(2, u64(1)), tlv(4, u64(5000))), nil},
		{"reply largest cpu", &HelloReply{}, cat(tlv(2, u64(1)), tlv(4, u64(tracefs.MaxCPU))), nil},
		{"reply cpu over the largest", &HelloReply{}, cat(tlv(2, u64(1)), tlv(4, u64(tracefs.MaxCPU+1))), ErrMalformed},
		{"reply cpu twice", &HelloReply{}, cat(tlv(2, u64(1)), tlv(4, u64(3)), tlv(4, u64(3))), ErrMalformed},
		{"reply too many cpus", &HelloReply{}, cat(tlv(2, u64(1)), many(MaxCPUs+1, tlv(4, u64(0)))), ErrTooLarge},
		{"reply page size 5000", &HelloReply{}, cat(tlv(2, u64(1)), tlv(5, u64(5000))), ErrMalformed},
		{"reply page size huge", &HelloReply{}, cat(tlv(2, u64(1)), tlv(5, u64(1<<40))), ErrMalformed},
		{"reply instance dotdot", &HelloReply{}, cat(tlv(2, u64(1)), tlv(8, []byte(".."))), ErrMalformed},
		{"reply clock slash", &HelloReply{}, cat(tlv(2, u64(1)), tlv(6, []byte("a/b"))), ErrMalformed},
		{"start bad event", &Start{}, tlv(2, tlv(1, []byte("sched:sched switch"))), ErrMalformed},
		{"start event three parts", &Start{}, tlv(2, tlv(1, []byte("a:b:c"))), ErrMalformed},
		{"start event empty system", &Start{}, tlv(2, tlv(1, []byte(":b"))), ErrMalformed},
		{"start filter newline", &Start{}, tlv(2, tlv(2, cat(tlv(1, []byte("irq")), tlv(2, []byte("a\nb"))))), ErrMalformed},
		{"start filter empty", &Start{}, tlv(2, tlv(2, tlv(1, []byte("irq")))), ErrMalformed},
		{"start nested garbage", &Start{}, tlv(2, []byte{1, 2}), ErrMalformed},
		{"start instance path", &Start{}, tlv(2, tlv(5, []byte("../x"))), ErrMalformed},
		{"stats cpu twice", &Stats{}, tlv(1, nil), nil}, // one CPU 0 entry is fine
		{"stats dup cpu", &Stats{}, cat(tlv(1, nil), tlv(1, nil)), ErrMalformed},
		{"stats cpu 5000", &Stats{}, tlv(1, tlv(1, u64(5000))), nil},
		{"stats cpu over the largest", &Stats{}, tlv(1, tlv(1, u64(tracefs.MaxCPU+1))), ErrMalformed},
		{"stats too many", &Stats{}, many(MaxCPUs+1, tlv(1, nil)), ErrTooLarge},
		{"status bad cpu", &Status{}, cpu(tracefs.MaxCPU + 1), ErrMalformed},
		{"reply cpu streamed and not", &HelloReply{}, cat(tlv(2, u64(1)), tlv(4, u64(3)), tlv(10, cat(tlv(1, u64(3)), tlv(2, []byte("offline"))))), ErrMalformed},
		{"reply unstreamed without reason", &HelloReply{}, cat(tlv(2, u64(1)), tlv(10, tlv(1, u64(3)))), ErrMalformed},
		{"reply unstreamed reason escape", &HelloReply{}, cat(tlv(2, u64(1)), tlv(10, cat(tlv(1, u64(3)), tlv(2, []byte("\x1b[2J"))))), ErrMalformed},
		{"start reply cpu twice", &StartReply{}, cat(tlv(3, u64(1)), tlv(3, u64(1))), ErrMalformed},
		{"start reply unstreamed over the largest", &StartReply{}, tlv(4, cat(tlv(1, u64(tracefs.MaxCPU+1)), tlv(2, []byte("x")))), ErrMalformed},
		{"stop reply stats and unstreamed", &StopReply{}, cat(tlv(3, tlv(1, u64(2))), tlv(4, cat(tlv(1, u64(2)), tlv(2, []byte("x"))))), ErrMalformed},
		{"status unstreamed too many", &Status{}, many(MaxCPUs+1, tlv(6, tlv(2, []byte("x")))), ErrTooLarge},
		{"chunk kind 0", &MetaChunk{}, tlv(7, u64(1)), ErrMalformed},
		{"chunk format without name", &MetaChunk{}, cat(tlv(2, u64(3)), tlv(7, u64(1))), ErrMalformed},
		{"chunk format path", &MetaChunk{}, cat(tlv(2, u64(3)), tlv(3, []byte("../../etc/passwd")), tlv(7, u64(1))), ErrMalformed},
		{"chunk format dotdot", &MetaChunk{}, cat(tlv(2, u64(3)), tlv(3, []byte("../x")), tlv(7, u64(1))), ErrMalformed},
		{"chunk named kallsyms", &MetaChunk{}, cat(tlv(2, u64(4)), tlv(3, []byte("a/b")), tlv(7, u64(1))), ErrMalformed},
		{"chunk past total", &MetaChunk{}, cat(tlv(2, u64(4)), tlv(5, u64(2)), tlv(6, []byte("abc"))), ErrMalformed},
		{"chunk offset past total", &MetaChunk{}, cat(tlv(2, u64(4)), tlv(4, u64(10)), tlv(5, u64(2))), ErrMalformed},
		{"chunk offset overflow", &MetaChunk{}, cat(tlv(2, u64(4)), tlv(4, u64(^uint64(0))), tlv(5, u64(^uint64(0))), tlv(6, []byte("abc"))), ErrTooLarge},
		{"chunk last too early", &MetaChunk{}, cat(tlv(2, u64(4)), tlv(5, u64(9)), tlv(6, []byte("abc")), tlv(7, u64(1))), ErrMalformed},
		{"chunk complete not last", &MetaChunk{}, cat(tlv(2, u64(4)), tlv(5, u64(3)), tlv(6, []byte("abc"))), ErrMalformed},
		{"chunk last is 2", &MetaChunk{}, cat(tlv(2, u64(4)), tlv(7, u64(2))), ErrMalformed},
		{"chunk total huge", &MetaChunk{}, cat(tlv(2, u64(4)), tlv(5, u64(1<<40))), ErrTooLarge},
		{"request too many", &MetaRequest{}, many(MaxItems+1, tlv(2, u64(1))), ErrTooLarge},
		{"request item 0", &MetaRequest{}, tlv(2, u64(0)), ErrMalformed},
		{"end too many errors", &MetaEnd{}, many(MaxErrors+1, tlv(3, []byte("x"))), ErrTooLarge},
		{"error code too big", &Error{}, tlv(2, u64(1<<32)), ErrMalformed},
		{"payload too big", &Stop{}, make([]byte, MaxFrame+1), ErrTooLarge},
		{"probe without clock", &ClockProbe{}, tlv(1, u64(1)), ErrMalformed},
		{"probe clock path", &ClockProbe{}, tlv(2, []byte("../mono")), ErrMalformed},
		{"probe mark 2", &ClockProbe{}, cat(tlv(2, []byte("mono")), tlv(3, u64(2))), ErrMalformed},
		{"clock reply backwards", &ClockReply{}, cat(tlv(3, u64(10)), tlv(4, u64(9))), ErrMalformed},
		{"clock reply received only", &ClockReply{}, tlv(3, u64(10)), ErrMalformed},
		{"clock reply escape", &ClockReply{}, tlv(5, []byte("\x1b[2J")), ErrMalformed},
		{"clock reply short integer", &ClockReply{}, tlv(3, []byte{1}), ErrMalformed},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
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
	t.Parallel()
	for _, tc := range []struct {
		name string
		m    Message
		want error
	}{
		{"hello no versions", &Hello{}, ErrMalformed},
		{"bad event", &Start{Settings: Settings{Events: []string{"sched/sched_switch"}}}, ErrMalformed},
		{"too many events", &Start{Settings: Settings{Events: make([]string, MaxEvents+1)}}, ErrTooLarge},
		{"latency too long", &Start{Settings: Settings{LatencyMS: MaxLatencyMS + 1}}, ErrTooLarge},
		{"events over a frame", &Start{Settings: Settings{Events: slicesOf(MaxEvents, strings.Repeat("e", 200))}}, ErrTooLarge},
		{"sub-buffer not a power of two", &Start{Settings: Settings{SubbufKiB: 12}}, ErrMalformed},
		{"sub-buffer under a page", &Start{Settings: Settings{SubbufKiB: 2}}, ErrMalformed},
		{"sub-buffer over the ring buffer's limit", &Start{Settings: Settings{SubbufKiB: 2048}}, ErrMalformed},
		{"chunk too big", &MetaChunk{Kind: MetaKallsyms, Total: MaxFrame, Data: make([]byte, MaxFrame), Last: true}, ErrTooLarge},
		{"stats dup cpu", &Stats{CPUs: []CPUStats{{CPU: 1}, {CPU: 1}}}, ErrMalformed},
		{"error escape", &Error{Message: "\x1b]0;pwned\x07"}, ErrMalformed},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
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
	t.Parallel()
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
