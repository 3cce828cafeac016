package tracefs

import (
	"strings"
	"testing"
)

// A per_cpu/cpuN/stats file as the kernel writes it.
const realStats = `entries: 12
overrun: 345
commit overrun: 1
bytes: 2080
oldest event ts:  5153.034283
now ts:  5183.569911
dropped events: 2
read events: 7
`

func TestParseCPUStats(t *testing.T) {
	got, err := ParseCPUStats([]byte(realStats))
	if err != nil {
		t.Fatal(err)
	}
	want := CPUStats{Entries: 12, Overrun: 345, CommitOverrun: 1, Bytes: 2080, DroppedEvents: 2, ReadEvents: 7,
		OldestEventTS: 5153034283000, NowTS: 5183569911000}
	if got != want {
		t.Errorf("got  %+v\nwant %+v", got, want)
	}
	if got, err := ParseCPUStats([]byte("oldest event ts: 123456789\nfuture key: x\n")); err != nil || got != (CPUStats{OldestEventTS: 123456789}) {
		t.Errorf("counter clock: %+v, %v", got, err)
	}
	for _, bad := range []string{"overrun: -1\n", "read events: x\n", "entries: 99999999999999999999999\n",
		"now ts: 2x\n", "now ts: 1.\n", "now ts: 18446744074.0\n", strings.Repeat("a", MaxStatsLine+1)} {
		if got, err := ParseCPUStats([]byte(bad)); err == nil || got != (CPUStats{}) {
			t.Errorf("ParseCPUStats(%.40q) = %+v, %v; want an error and no counters", bad, got, err)
		}
	}
}

func FuzzParseCPUStats(f *testing.F) {
	f.Add([]byte(realStats))
	f.Add([]byte("oldest event ts: 18446744073.709551615\n"))
	f.Add([]byte("now ts: 1.\x00\xff\n"))
	f.Fuzz(func(t *testing.T, text []byte) {
		st, err := ParseCPUStats(text)
		if err != nil && st != (CPUStats{}) {
			t.Fatalf("an error with counters %+v", st)
		}
		if err == nil && !strings.Contains(string(text), ":") && st != (CPUStats{}) {
			t.Fatalf("counters from text without a colon: %+v", st)
		}
	})
}
