package guest

import (
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/vtrace/vtrace/proto/wire"
)

// A per_cpu/cpuN/stats file as the kernel writes it.
const realStats = `entries: 12
overrun: 345
commit overrun: 0
bytes: 2080
oldest event ts:  5153.034283
now ts:  5183.569911
dropped events: 0
read events: 7
`

func TestParseCPUStats(t *testing.T) {
	got, err := ParseCPUStats(3, realStats)
	if err != nil {
		t.Fatal(err)
	}
	want := wire.CPUStats{CPU: 3, Entries: 12, Overrun: 345, Bytes: 2080, ReadEvents: 7,
		OldestEventTS: 5153034283000, NowTS: 5183569911000, Raw: realStats}
	if got != want {
		t.Errorf("got  %+v\nwant %+v", got, want)
	}
	counter, err := ParseCPUStats(0, "oldest event ts: 123456789\nnow ts: 2x\n")
	if err == nil {
		t.Errorf("bad now ts accepted: %+v", counter)
	}
	if _, err := ParseCPUStats(0, "oldest event ts: 123456789\n"); err != nil {
		t.Errorf("counter clock: %v", err)
	}
}

func FuzzParseCPUStats(f *testing.F) {
	f.Add(realStats)
	f.Add("oldest event ts: 18446744073.709551615\n")
	f.Add("now ts: 1.\x00\xff\n")
	f.Fuzz(func(t *testing.T, s string) {
		st, err := ParseCPUStats(1, s)
		if err != nil {
			return
		}
		if len(st.Raw) > wire.MaxString || !utf8.ValidString(st.Raw) {
			t.Fatalf("raw of %d bytes, valid UTF-8 %t", len(st.Raw), utf8.ValidString(st.Raw))
		}
		if _, err := (&wire.StopReply{CPUs: []wire.CPUStats{st}}).MarshalBinary(); err != nil {
			t.Fatalf("stats do not encode: %v", err)
		}
		if !strings.Contains(s, ":") && st != (wire.CPUStats{CPU: 1, Raw: st.Raw}) {
			t.Fatalf("counters from text without a colon: %+v", st)
		}
	})
}

func TestAddressesHidden(t *testing.T) {
	for _, c := range []struct {
		text   string
		hidden bool
	}{
		{"0000000000000000 A fixed_percpu_data\n0000000000001000 A cpu_debug_store\nffffffff81000000 T _text\n", false},
		{"ffffffff81000000 T _text\n", false},
		{"0000000000000000 A fixed_percpu_data\n0000000000000000 T _text\n", true},
		{"", true},
	} {
		got, err := addressesHidden(strings.NewReader(c.text))
		if err != nil || got != c.hidden {
			t.Errorf("addressesHidden(%q) = %v, %v; want %v", c.text, got, err, c.hidden)
		}
	}
}

func TestRecordingSince(t *testing.T) {
	r := &recording{base: []wire.CPUStats{
		{CPU: 0, Overrun: 100, ReadEvents: 50, DroppedEvents: 1, BytesSent: 8192, PagesSent: 2},
		{CPU: 1, Overrun: 7, ReadEvents: 9},
	}}
	got := r.since([]wire.CPUStats{
		{CPU: 1, Overrun: 7, ReadEvents: 19, Entries: 3},
		{CPU: 0, Overrun: 100, ReadEvents: 80, DroppedEvents: 1, BytesSent: 12288, PagesSent: 3, Entries: 5},
		{CPU: 2, Overrun: 4, ReadEvents: 4}, // no baseline: as read
	})
	want := []wire.CPUStats{
		{CPU: 1, ReadEvents: 10, Entries: 3},
		{CPU: 0, ReadEvents: 30, BytesSent: 4096, PagesSent: 1, Entries: 5},
		{CPU: 2, Overrun: 4, ReadEvents: 4},
	}
	for i := range want {
		if got[i] != want[i] {
			t.Errorf("since()[%d] = %+v, want %+v", i, got[i], want[i])
		}
	}
	// A buffer reset (resized) during the recording restarted its counters.
	r = &recording{base: []wire.CPUStats{{CPU: 0, Overrun: 100, ReadEvents: 50}}}
	if got := r.since([]wire.CPUStats{{CPU: 0, Overrun: 3, ReadEvents: 2}}); got[0].Overrun != 3 || got[0].ReadEvents != 2 {
		t.Errorf("after a reset: %+v, want the counters since the reset (3, 2)", got[0])
	}
}
