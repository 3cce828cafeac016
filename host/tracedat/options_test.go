package tracedat

import (
	"encoding/binary"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/vtrace/vtrace/host/tracedat/tracedattest"
	"github.com/vtrace/vtrace/internal/testutil"
	"github.com/vtrace/vtrace/proto/ringbuf"
)

// TestTimelineOptionBytes pins the layouts of TRACEID, TIME_SHIFT and
// GUEST (trace-cmd.dat.v6 and its reader, trace-input.c).
func TestTimelineOptionBytes(t *testing.T) {
	t.Parallel()
	tl := &Timeline{TraceID: 0x1122, Peer: 0x3344, Shift: []ShiftPoint{{100, -5}, {200, 7}},
		Guests: []Guest{{Name: "vm", TraceID: 0x5566, VCPUs: []VCPU{{CPU: 1, TID: 4001}, {CPU: 0, TID: 4000}}}}}
	opts := tl.options(2)
	le := binary.LittleEndian
	var shift []byte
	shift = le.AppendUint64(shift, 0x3344)
	shift = le.AppendUint32(shift, 1)
	shift = le.AppendUint32(shift, 2)
	for range 2 {
		shift = le.AppendUint32(shift, 2)
		for _, v := range []uint64{100, 200, uint64(^uint64(4)), 7, 1, 1} { // -5 as two's complement
			shift = le.AppendUint64(shift, v)
		}
	}
	shift = append(shift, make([]byte, 2*2*8)...)
	guest := append([]byte("vm\x00"), le.AppendUint64(nil, 0x5566)...)
	for _, v := range []uint32{2, 0, 4000, 1, 4001} {
		guest = le.AppendUint32(guest, v)
	}
	want := []Option{{OptionTraceID, le.AppendUint64(nil, 0x1122)}, {OptionTimeShift, shift}, {OptionGuest, guest}}
	if diff := cmp.Diff(want, opts); diff != "" {
		t.Errorf("options (-want +got):\n%s", diff)
	}
	if (*Timeline)(nil).options(4) != nil {
		t.Error("a nil Timeline writes options")
	}
}

func TestTimelineCheck(t *testing.T) {
	t.Parallel()
	for name, tl := range map[string]*Timeline{
		"shift without ids": {Shift: []ShiftPoint{{1, 1}}},
		"points backwards":  {TraceID: 1, Peer: 2, Shift: []ShiftPoint{{5, 1}, {4, 1}}},
		"negative time":     {TraceID: 1, Peer: 2, Shift: []ShiftPoint{{-1, 1}}},
		"guest no name":     {Guests: []Guest{{TraceID: 1}}},
		"guest NUL":         {Guests: []Guest{{Name: "a\x00b"}}},
		"vcpu twice":        {Guests: []Guest{{Name: "g", VCPUs: []VCPU{{0, 5}, {0, 6}}}}},
		"vcpu no thread":    {Guests: []Guest{{Name: "g", VCPUs: []VCPU{{0, 0}}}}},
	} {
		if _, _, err := (Options{Timeline: tl}).resolve(); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
}

// markerLine is a marker in `trace-cmd report -t` of several files:
// "FILE: comm-pid [cpu] sec.nsec: print: ... clocktest N".
var markerLine = regexp.MustCompile(`^\s*(\S+):.*\[\d+\]\s+(?:\S+\s+)?(\d+)\.(\d{9}):\s+print:.*clocktest (\d+)`)

// TestIntegrationTraceCmdMergesTimeline: the same capture written as a
// host's file and as its guest's, the guest's shifted by TIME_SHIFT points
// one of which moves; trace-cmd report shows every guest marker at the
// host time the points give, interpolated as trace-cmd does, in both
// versions.
func TestIntegrationTraceCmdMergesTimeline(t *testing.T) {
	tc := testutil.NeedProgram(t, "trace-cmd", "trace-cmd")
	inst := testutil.Instance(t, "vtrace-tracedat-timeline")
	tracedattest.Write(t, inst, "trace_clock", "mono")
	tracedattest.Write(t, inst, "tracing_on", "1")
	marker, err := os.OpenFile(filepath.Join(inst, "trace_marker"), os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	const n = 50
	for i := range n {
		fmt.Fprintf(marker, "clocktest %d\n", i)
	}
	marker.Close()
	tracedattest.Write(t, inst, "tracing_on", "0")
	l := layoutOf(t, inst)
	out := t.TempDir()
	tracedattest.Drain(t, inst, out, l.PageSize)
	s, cpus := captured(t, inst, out)
	// The markers' own times, and points around them: +1 s at the first,
	// +1 s + 3 ms a little after the last.
	own := map[int]int64{}
	for _, c := range cpus {
		_, err := ringbuf.ScanFile(l, c.Path, func(r ringbuf.Record) error {
			if m := regexp.MustCompile(`clocktest (\d+)`).FindSubmatch(r.Payload); m != nil {
				k, _ := strconv.Atoi(string(m[1]))
				own[k] = int64(r.TS)
			}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	if len(own) != n {
		t.Fatalf("%d markers recorded, want %d", len(own), n)
	}
	p0, p1 := ShiftPoint{own[0], 1e9}, ShiftPoint{own[n-1] + 1000, 1e9 + 3e6}
	shifted := func(ts int64) int64 { // trace-input.c: timestamp_correction_calc
		delta := p1.Guest - p0.Guest
		return ts + p0.Shift + ((ts-p0.Guest)*(p1.Shift-p0.Shift)+delta/2)/delta
	}
	for _, f := range []Format{FormatV6, FormatV7} {
		host, guest := filepath.Join(out, fmt.Sprintf("host-%v.dat", f)), filepath.Join(out, fmt.Sprintf("guest-%v.dat", f))
		if _, err := WriteFile(host, s, cpus, Options{Format: f, Timeline: &Timeline{TraceID: 7,
			Guests: []Guest{{Name: "guest", TraceID: 8, VCPUs: []VCPU{{0, os.Getpid()}}}}}}, false); err != nil {
			t.Fatal(err)
		}
		if _, err := WriteFile(guest, s, cpus, Options{Format: f, Timeline: &Timeline{TraceID: 8, Peer: 7,
			Shift: []ShiftPoint{p0, p1}}}, false); err != nil {
			t.Fatal(err)
		}
		b, err := exec.Command(tc, "report", "-t", "-i", host, "-i", guest).CombinedOutput()
		if err != nil {
			t.Fatalf("trace-cmd report: %v\n%s", err, b)
		}
		got := map[string]map[int]int64{}
		for _, line := range strings.Split(string(b), "\n") {
			m := markerLine.FindStringSubmatch(line)
			if m == nil {
				continue
			}
			sec, _ := strconv.ParseInt(m[2], 10, 64)
			ns, _ := strconv.ParseInt(m[3], 10, 64)
			k, _ := strconv.Atoi(m[4])
			file := filepath.Base(strings.TrimSuffix(m[1], ":"))
			if got[file] == nil {
				got[file] = map[int]int64{}
			}
			got[file][k] = sec*1e9 + ns
		}
		for k, ts := range own {
			if h := got[filepath.Base(host)][k]; h != ts {
				t.Errorf("%v: host marker %d at %d, recorded at %d", f, k, h, ts)
			}
			if g, want := got[filepath.Base(guest)][k], shifted(ts); g != want {
				t.Errorf("%v: guest marker %d at %d, want %d (recorded at %d)", f, k, g, want, ts)
			}
		}
	}
}
