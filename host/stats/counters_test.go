package stats

import (
	"strings"
	"testing"
)

const realStats = `entries: 12
overrun: 164455
commit overrun: 2
bytes: 5080
oldest event ts:  5153.034283
now ts:  5160.117010
dropped events: 3
read events: 4096
`

func TestParseCounters(t *testing.T) {
	c, err := ParseCounters([]byte(realStats))
	if err != nil {
		t.Fatal(err)
	}
	if c != (Counters{Entries: 12, Overrun: 164455, CommitOverrun: 2, DroppedEvents: 3, ReadEvents: 4096}) || c.Lost() != 164460 {
		t.Errorf("counters %+v, lost %d", c, c.Lost())
	}
	for _, bad := range []string{"overrun: -1\n", "read events: x\n", "entries: 99999999999999999999999\n", strings.Repeat("a", 5000)} {
		if _, err := ParseCounters([]byte(bad)); err == nil {
			t.Errorf("ParseCounters(%.40q) accepted", bad)
		}
	}
}

func FuzzParseCounters(f *testing.F) {
	f.Add([]byte(realStats))
	f.Add([]byte("overrun: 1\nread events: 2"))
	f.Fuzz(func(t *testing.T, text []byte) {
		c, err := ParseCounters(text)
		if err != nil && c != (Counters{}) {
			t.Fatalf("an error with counters %+v", c)
		}
	})
}
