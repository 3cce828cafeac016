package sys_test

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"testing"

	"github.com/vtrace/vtrace/internal/sys"
	"github.com/vtrace/vtrace/internal/testutil"
	"github.com/vtrace/vtrace/proto/ringbuf"
)

func TestTraceClockByName(t *testing.T) {
	t.Parallel()
	for _, name := range sys.UserClockNames() {
		c, err := sys.TraceClockByName(name)
		if err != nil || c.Name != name {
			t.Errorf("TraceClockByName(%q) = %v, %v", name, c, err)
		}
		a, err := c.Now()
		if err != nil {
			t.Fatal(err)
		}
		if b, _ := c.Now(); b < a || a <= 0 {
			t.Errorf("%s: read %d then %d", name, a, b)
		}
	}
	for _, name := range []string{"local", "global", "x86-tsc", "counter", ""} {
		if _, err := sys.TraceClockByName(name); err == nil {
			t.Errorf("TraceClockByName(%q): no error", name)
		}
	}
}

// TestIntegrationTraceClockStampsBetweenReadings: a trace_marker write
// made between two readings of Now is stamped by the ring buffer between
// them, for every clock user space reads: the readings are the trace
// clock itself.
func TestIntegrationTraceClockStampsBetweenReadings(t *testing.T) {
	dir := testutil.Instance(t, "vtrace-sys-clock")
	for _, name := range sys.UserClockNames() {
		c, _ := sys.TraceClockByName(name)
		if err := os.WriteFile(filepath.Join(dir, "trace_clock"), []byte(name), 0); err != nil {
			t.Fatalf("select trace clock %s: %v", name, err) // also empties the buffer
		}
		if err := os.WriteFile(filepath.Join(dir, "tracing_on"), []byte("1"), 0); err != nil {
			t.Fatal(err)
		}
		marker, err := os.OpenFile(filepath.Join(dir, "trace_marker"), os.O_WRONLY, 0)
		if err != nil {
			t.Fatal(err)
		}
		const n = 200
		var before, after [n]int64
		for i := range n {
			before[i], _ = c.Now()
			if _, err := fmt.Fprintf(marker, "clocktest %d\n", i); err != nil {
				t.Fatal(err)
			}
			after[i], _ = c.Now()
		}
		marker.Close()
		os.WriteFile(filepath.Join(dir, "tracing_on"), []byte("0"), 0)
		seen := 0
		var widest int64
		for _, r := range records(t, dir) {
			i := bytes.Index(r.Payload, []byte("clocktest "))
			if i < 0 {
				continue
			}
			rest := r.Payload[i+len("clocktest "):]
			k, err := strconv.Atoi(string(rest[:bytes.IndexByte(rest, '\n')]))
			if err != nil || k < 0 || k >= n {
				t.Fatalf("%s: marker %q", name, r.Payload)
			}
			seen++
			if ts := int64(r.TS); ts < before[k] || ts > after[k] {
				t.Errorf("%s: marker %d stamped %d, outside the readings [%d, %d]", name, k, ts, before[k], after[k])
			}
			widest = max(widest, after[k]-before[k])
		}
		if seen != n {
			t.Errorf("%s: %d markers in the buffer, want %d", name, seen, n)
		}
		t.Logf("%s: %d markers within their readings; widest pair %d ns apart", name, seen, widest)
	}
}

// records reads every event left in the instance's per-CPU buffers.
func records(t *testing.T, dir string) []ringbuf.Record {
	l, err := ringbuf.LayoutFromTracefs(dir)
	if err != nil {
		t.Fatal(err)
	}
	cpus, _ := filepath.Glob(filepath.Join(dir, "per_cpu", "cpu*"))
	var out []ringbuf.Record
	page := make([]byte, l.PageSize)
	for _, cpu := range cpus {
		fd, err := sys.Open(filepath.Join(cpu, "trace_pipe_raw"), sys.ORdonly|sys.ONonblock, 0)
		if err != nil {
			t.Fatal(err)
		}
		for {
			n, err := sys.Read(fd, page)
			if errors.Is(err, sys.EAGAIN) || n == 0 {
				break
			}
			if err != nil {
				t.Fatal(err)
			}
			if _, err := ringbuf.ParsePage(l, page, func(r ringbuf.Record) error {
				r.Payload = bytes.Clone(r.Payload)
				out = append(out, r)
				return nil
			}); err != nil {
				t.Fatal(err)
			}
		}
		sys.Close(fd)
	}
	return out
}
