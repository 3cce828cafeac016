package tracefs_test

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/vtrace/vtrace/internal/testutil"
	"github.com/vtrace/vtrace/proto/tracefs"
)

// TestParseCPUStats reads the stats of a real instance's CPUs, after
// markers gave them events, and checks every counter against the kernel's
// text; then times of a counter clock and bad lines.
func TestParseCPUStats(t *testing.T) {
	inst := testutil.Instance(t, "vtrace-tracefs-stats")
	marker, err := os.OpenFile(filepath.Join(inst, "trace_marker"), os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 10; i++ {
		marker.WriteString("vtrace stats test\n")
	}
	marker.Close()
	if err := os.WriteFile(filepath.Join(inst, "tracing_on"), []byte("0"), 0); err != nil {
		t.Fatal(err)
	}
	var entries uint64
	for cpu := 0; cpu < testutil.InstanceCPUs(t, inst); cpu++ {
		text, err := os.ReadFile(tracefs.PerCPU(inst, cpu, "stats"))
		if err != nil {
			t.Fatal(err)
		}
		st, err := tracefs.ParseCPUStats(text)
		if err != nil {
			t.Fatalf("cpu %d: %v\n%s", cpu, err, text)
		}
		k := testutil.CPUStats(t, inst, cpu)
		got := map[string]uint64{"entries": st.Entries, "overrun": st.Overrun, "commit overrun": st.CommitOverrun,
			"bytes": st.Bytes, "dropped events": st.DroppedEvents, "read events": st.ReadEvents}
		for key, v := range got {
			if n, ok := k[key]; !ok || uint64(n) != v {
				t.Errorf("cpu %d: %s %d, the kernel's text says %d (%t)", cpu, key, v, n, ok)
			}
		}
		if st.NowTS == 0 || (st.Entries > 0 && (st.OldestEventTS == 0 || st.OldestEventTS > st.NowTS)) {
			t.Errorf("cpu %d: oldest event ts %d, now ts %d, from\n%s", cpu, st.OldestEventTS, st.NowTS, text)
		}
		entries += st.Entries
	}
	if entries < 10 {
		t.Errorf("%d entries in all after 10 markers", entries)
	}

	if got, err := tracefs.ParseCPUStats([]byte("oldest event ts: 123456789\nnow ts:  5183.569911\nfuture key: x\n")); err != nil ||
		got != (tracefs.CPUStats{OldestEventTS: 123456789, NowTS: 5183569911000}) {
		t.Errorf("times: %+v, %v", got, err)
	}
	for _, bad := range []string{"overrun: -1", "read events: x", "bytes: 99999999999999999999999",
		"now ts: 2x", "now ts: 1.", "now ts: 18446744074.0", strings.Repeat("a", tracefs.MaxStatsLine+1)} {
		if got, err := tracefs.ParseCPUStats([]byte("entries: 1\n" + bad + "\n")); err == nil || got != (tracefs.CPUStats{}) {
			t.Errorf("ParseCPUStats(%.40q) = %+v, %v; want an error and no counters", bad, got, err)
		}
	}
}

func FuzzParseCPUStats(f *testing.F) {
	f.Add([]byte("entries: 12\noverrun: 345\nbytes: 2080\noldest event ts:  5153.034283\nnow ts:  5183.569911\n"))
	f.Add([]byte("oldest event ts: 18446744073.709551615\n"))
	f.Add([]byte("now ts: 1.\x00\xff\n"))
	f.Fuzz(func(t *testing.T, text []byte) {
		st, err := tracefs.ParseCPUStats(text)
		if err != nil && st != (tracefs.CPUStats{}) {
			t.Fatalf("an error with counters %+v", st)
		}
		if err == nil && !strings.Contains(string(text), ":") && st != (tracefs.CPUStats{}) {
			t.Fatalf("counters from text without a colon: %+v", st)
		}
	})
}
