package e2e

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/vtrace/vtrace/internal/testutil"
	"github.com/vtrace/vtrace/internal/vmtest"
	"github.com/vtrace/vtrace/proto/ringbuf"
)

// The largest events of Linux 6.12 (kernel/trace/ring_buffer.c,
// trace.c, trace_entries.h). An event's data is at most the buffer's
// max_data_size, which __ring_buffer_alloc sets once, from the sub-buffer
// of one memory page the buffer is made with (its data size less two u32
// event headers: 4072 bytes), and which ring_buffer_subbuf_order_set
// leaves as it is: a larger sub-buffer takes more events, never a larger
// one. Of it, a trace_marker_raw event's own fields (struct trace_entry and
// its u32 id) take 12 bytes, and a trace_marker text event's 18 (struct
// trace_entry, the ip, a newline and the NUL): a text written in one
// write(2) is cut there (and at TRACE_MARKER_MAX_SIZE, 4096), a raw one
// that does not fit is refused with EINVAL.
const (
	rbEventHeaders = 8
	rawEntryFields = 12
	textFields     = 18
)

// TestIntegrationSubbufSizes: in one 6.12 guest, one capture for each
// sub-buffer size of 8, 16 and 64 KiB (`collect --start --subbuf-size`),
// with sched_switch under a workload of fork and exec, markers enough for
// full pages spliced on every CPU, and the largest trace_marker and trace_marker_raw
// events the kernel records (one byte more of raw is refused, whatever the
// sub-buffer size: see above). While recording, the agent's instance has
// that sub-buffer size and its header_page says so; the capture's pages
// are of that size and its header_page is the instance's; every event the
// kernel handed out arrived (the agent's final stats, per CPU: read events
// equal the events parsed, none left, none lost); both markers arrived
// whole; trace-cmd reports every event, the markers included, and `vtrace
// host stats` counts the same, and the same of the capture converted to a
// v7 zstd file. Afterwards the instance is gone and the
// guest's tracefs is as it was. Last, the agent's own --subbuf-size with
// no settings: the top-level buffer has that size while recording and its
// own back at the stop; the capture's pages are of that size, and hold
// every event the kernel handed out. And -o: an agent of its own with
// --subbuf-size writes cpustream records of pages of that size.
func TestIntegrationSubbufSizes(t *testing.T) {
	logDuration(t)
	testutil.NeedProgram(t, "trace-cmd", "trace-cmd")
	g := vmtest.Boot(t, vmtest.Options{Kernel: "6.12", CPUs: 2})
	work := t.TempDir()
	clean := tracefsState(t, g)
	const inst = "/sys/kernel/tracing/instances/vtrace"
	for _, kib := range []int{8, 16, 64} {
		t.Run(fmt.Sprintf("%dK", kib), func(t *testing.T) {
			out := filepath.Join(work, strconv.Itoa(kib))
			page := kib << 10
			// One event: each one enabled or disabled is kernel text
			// patched (static calls and keys), which under TCG once
			// crashed the guest (an int3 in update_curr while the whole
			// sched system was being disabled).
			col := startCollect(t, g, out, "--start", "--events", "sched:sched_switch", "--subbuf-size", fmt.Sprintf("%dK", kib))

			if got := strings.TrimSpace(command(t, g, "sh", "cat "+inst+"/buffer_subbuf_size_kb")); got != strconv.Itoa(kib) {
				t.Errorf("the agent's instance while recording: buffer_subbuf_size_kb %q, want %d", got, kib)
			}
			hp := command(t, g, "sh", "cat "+inst+"/events/header_page")
			l, err := ringbuf.ParseHeaderPage([]byte(hp))
			if err != nil || l.PageSize != page {
				t.Fatalf("the agent's instance's header_page gives pages of %d bytes (%v), want %d:\n%s", l.PageSize, err, page, hp)
			}
			maxData := 4096 - l.DataOffset - rbEventHeaders // one page's sub-buffer, whatever this one's size
			raw, textLen := maxData-rawEntryFields, maxData-textFields

			// The largest markers, each in one write(2): text 'a', and raw:
			// a u32 id "vt\0\0", then bytes 'b'.
			text := strings.Repeat("a", textLen)
			command(t, g, "sh", fmt.Sprintf("head -c %d /dev/zero | tr '\\000' a > /tmp/text && dd if=/tmp/text of=%s/trace_marker bs=%d count=1",
				textLen, inst, textLen))
			command(t, g, "sh", fmt.Sprintf(`{ printf 'vt\000\000'; head -c %d /dev/zero | tr '\000' b; } > /tmp/raw && dd if=/tmp/raw of=%s/trace_marker_raw bs=%d count=1`,
				raw-4, inst, raw))
			// One byte more: the kernel refuses it (EINVAL) rather than
			// cut it, however large the sub-buffer.
			msg, err := g.Command("sh", fmt.Sprintf(`{ printf 'vt\000\000'; head -c %d /dev/zero | tr '\000' b; } > /tmp/raw1 && dd if=/tmp/raw1 of=%s/trace_marker_raw bs=%d count=1`,
				raw-3, inst, raw+1))
			if err == nil || !strings.Contains(msg, "nvalid argument") {
				t.Errorf("a raw marker of %d bytes with %d KiB sub-buffers: %v, %q; want the kernel's EINVAL", raw+1, kib, err, msg)
			}
			runWorkload(t, g, "spawn", 3, "")
			// And enough for a few 64 KiB pages on every CPU, whatever the
			// load: 2000 markers of 100 bytes each.
			for cpu := range g.CPUs {
				command(t, g, "sh", fmt.Sprintf(`taskset -c %d sh -c 'i=0; while [ $i -lt 2000 ]; do echo "vtrace-fill %s $i" >%s/trace_marker; i=$((i + 1)); done'`,
					cpu, strings.Repeat("f", 80), inst))
			}
			col.stop(syscall.SIGTERM)

			if inst := instances(t, g); len(inst) != 0 {
				t.Errorf("the guest's instances after the capture: %v, want none", inst)
			}
			if now := tracefsState(t, g); now != clean {
				t.Errorf("the guest's tracefs after the capture:\n%s\nwas:\n%s", now, clean)
			}
			saved, err := os.ReadFile(filepath.Join(out, "meta", "events", "header_page"))
			if err != nil {
				t.Fatal(err)
			}
			if sl, err := ringbuf.ParseHeaderPage(saved); err != nil || sl != l {
				t.Errorf("the capture's header_page: %+v (%v), want the instance's %+v", sl, err, l)
			}

			ids := formatIDs(t, out, "ftrace/print", "ftrace/raw_data")
			wantRaw := append([]byte("vt\000\000"), bytes.Repeat([]byte("b"), raw-4)...)
			var texts, raws int
			got := make([]cpuCapture, g.CPUs)
			for cpu := range got {
				path := filepath.Join(out, fmt.Sprintf("cpu%d.raw", cpu))
				c, err := scanWith(path, l, func(rec ringbuf.Record) {
					const hdr = 8 // struct trace_entry
					switch p := rec.Payload; rec.Type() {
					case ids["ftrace/print"]: // trace_entry, unsigned long ip, char buf[]
						if len(p) >= hdr+8+len(text) && string(p[hdr+8:hdr+8+len(text)]) == text {
							texts++
						}
					case ids["ftrace/raw_data"]: // trace_entry, then the bytes written (id first)
						if len(p) >= hdr+raw && bytes.Equal(p[hdr:hdr+raw], wantRaw) {
							raws++
						}
					}
				})
				if err != nil {
					t.Fatal(err)
				}
				if c.Partial != 0 {
					t.Errorf("cpu%d.raw: %d bytes, not whole pages of %d", cpu, c.Bytes, page)
				}
				if c.Pages < 2 {
					t.Errorf("cpu%d.raw: %d pages of %d bytes; want full ones spliced before the stop's last", cpu, c.Pages, page)
				}
				got[cpu] = c
			}
			if texts != 1 || raws != 1 {
				t.Errorf("markers that arrived whole: %d of %d text bytes, %d of %d raw bytes; want one each", texts, len(text), raws, raw)
			}
			agent := agentStats(t, out, g.CPUs)
			for cpu, h := range got {
				a := agent[cpu]
				t.Logf("cpu %d: %d events in %d pages of %d bytes; the agent read %d, entries %d", cpu, h.Events, h.Pages, page, a.ReadEvents, a.Entries)
				if uint64(h.Events) != a.ReadEvents || a.Entries != 0 {
					t.Errorf("cpu %d: the host parsed %d events, the agent read %d, %d left in the buffer", cpu, h.Events, a.ReadEvents, a.Entries)
				}
				if a.Overrun+a.CommitOverrun+a.DroppedEvents != 0 || h.MissedPages != 0 {
					t.Errorf("cpu %d: events lost (overrun %d, commit overrun %d, dropped %d; %d pages flagged)",
						cpu, a.Overrun, a.CommitOverrun, a.DroppedEvents, h.MissedPages)
				}
			}
			r := checkReport(t, out, got)
			checkConsecutive(t, r)
			if r.PerEvent["print"] != 1+2000*int64(g.CPUs) || r.PerEvent["raw_data"] != 1 || r.PerEvent["sched_switch"] == 0 {
				t.Errorf("trace-cmd report shows %d print, %d raw_data and %d sched_switch events; want 1 + 2000 a CPU, 1 and some",
					r.PerEvent["print"], r.PerEvent["raw_data"], r.PerEvent["sched_switch"])
			}
			report := run(t, "trace-cmd", "report", "-i", filepath.Join(out, "trace.dat"))
			if !strings.Contains(report, text) {
				t.Errorf("trace-cmd report does not print the %d-byte marker whole", len(text))
			}
			// The same pages in a compressed v7 file: trace-cmd sees the same.
			v7 := filepath.Join(out, "v7.dat")
			vtrace(t, "host", "convert", "--format", "v7", "--compress", "zstd", "-o", v7, out)
			if r7 := traceCmdReport(t, v7); fmt.Sprint(r7.PerCPUEvent) != fmt.Sprint(r.PerCPUEvent) {
				t.Errorf("trace-cmd report of the v7+zstd file: %v; of the v6 file: %v", r7.PerCPUEvent, r.PerCPUEvent)
			}
		})
	}

	// The agent's own --subbuf-size, with no settings: the top-level
	// buffer it streams gets 16 KiB sub-buffers for the recording, and its
	// own size back at the stop.
	t.Run("agent-flag", func(t *testing.T) {
		const top = "/sys/kernel/tracing"
		old := strings.TrimSpace(command(t, g, "sh", "cat "+top+"/buffer_subbuf_size_kb"))
		command(t, g, "kill-agent", "TERM")
		command(t, g, "start-agent", "--subbuf-size", "16K")
		if _, err := g.WaitFor(`msg="CPUs streamed"`, 60*time.Second); err != nil {
			t.Fatal(err)
		}
		out := filepath.Join(work, "agent-flag")
		col := startCollect(t, g, out, "--start")
		if got := strings.TrimSpace(command(t, g, "sh", "cat "+top+"/buffer_subbuf_size_kb")); got != "16" {
			t.Errorf("the top-level buffer while recording: buffer_subbuf_size_kb %q, want 16", got)
		}
		runWorkload(t, g, "marker", 2, "")
		col.stop(syscall.SIGTERM)
		if got := strings.TrimSpace(command(t, g, "sh", "cat "+top+"/buffer_subbuf_size_kb")); got != old {
			t.Errorf("the top-level buffer after the capture: buffer_subbuf_size_kb %q, want its own %s back", got, old)
		}
		if now := tracefsState(t, g); now != clean {
			t.Errorf("the guest's tracefs after the capture:\n%s\nwas:\n%s", now, clean)
		}
		saved, err := os.ReadFile(filepath.Join(out, "meta", "events", "header_page"))
		if err != nil {
			t.Fatal(err)
		}
		l, err := ringbuf.ParseHeaderPage(saved)
		if err != nil || l.PageSize != 16<<10 {
			t.Fatalf("the capture's header_page: pages of %d bytes (%v), want 16384", l.PageSize, err)
		}
		agent := agentStats(t, out, g.CPUs)
		got := make([]cpuCapture, g.CPUs)
		for cpu := range got {
			c, err := scanWith(filepath.Join(out, fmt.Sprintf("cpu%d.raw", cpu)), l, func(ringbuf.Record) {})
			if err != nil {
				t.Fatal(err)
			}
			a := agent[cpu]
			t.Logf("cpu %d: %d events in %d pages of 16384 bytes; the agent read %d", cpu, c.Events, c.Pages, a.ReadEvents)
			// The top level overran while nobody read it: the first page
			// may carry the count of the events lost before the start
			// (collect's summary says so); no other may.
			if c.Partial != 0 || c.Pages < 2 || uint64(c.Events) != a.ReadEvents || a.Overrun+a.CommitOverrun+a.DroppedEvents != 0 || c.MissedPages > 1 {
				t.Errorf("cpu %d: %d bytes in %d pages of 16384, %d events parsed; the agent read %d (overrun %d, commit overrun %d, dropped %d; %d pages flagged)",
					cpu, c.Bytes, c.Pages, c.Events, a.ReadEvents, a.Overrun, a.CommitOverrun, a.DroppedEvents, c.MissedPages)
			}
			got[cpu] = c
		}
		checkReport(t, out, got)
	})

	// -o: the cpustream records carry pages of the recording's size. An
	// agent of its own streams an instance with --subbuf-size 16K to a
	// file, on the line protocol's orders through a FIFO of its own.
	t.Run("stdout", func(t *testing.T) {
		const d = "/sys/kernel/tracing/instances/vt-o"
		command(t, g, "sh", "mkdir -p /tmp/p && mkfifo /tmp/p/agent-ctl-path && mkdir "+d+" && echo 1 >"+d+"/events/sched/sched_switch/enable")
		command(t, g, "sh", "vtrace guest agent -o --verbose --ports-dir /tmp/p --tracefs "+d+
			" --subbuf-size 16K >/tmp/o 2>/tmp/o.log </dev/null & echo $! >/tmp/o.pid")
		wait := func(cond string) {
			t.Helper()
			command(t, g, "sh", "i=0; until "+cond+"; do [ $i -lt 300 ] || { cat /tmp/o.log; exit 1; }; usleep 100000; i=$((i + 1)); done")
		}
		wait(`grep -q "agent ready" /tmp/o.log`)
		command(t, g, "sh", "echo 1 >/tmp/p/agent-ctl-path")
		wait(`[ "$(cat ` + d + `/buffer_subbuf_size_kb)" = 16 ] && grep -q "msg=streaming cpus" /tmp/o.log`)
		command(t, g, "sh", `for c in 0 1; do taskset -c $c sh -c 'i=0; while [ $i -lt 1500 ]; do echo "vtrace-o $i" >`+d+`/trace_marker; i=$((i + 1)); done'; done`)
		command(t, g, "sh", "echo 0 >/tmp/p/agent-ctl-path")
		wait(`[ "$(cat ` + d + `/buffer_subbuf_size_kb)" = 4 ]`)
		out := command(t, g, "sh", "kill -TERM $(cat /tmp/o.pid); while kill -0 $(cat /tmp/o.pid) 2>/dev/null; do usleep 100000; done; "+
			"rmdir "+d+"; stat -c %s /tmp/o; od -A n -t u4 -N 16 /tmp/o")
		f := strings.Fields(out)
		if len(f) != 5 {
			t.Fatalf("the -o output: %q, want its size and its first record header", out)
		}
		size, _ := strconv.Atoi(f[0])
		const rec = 16 + 16<<10 // cpustream header, page
		t.Logf("-o wrote %d bytes; first record header (u32s): %v", size, f[1:])
		if size == 0 || size%rec != 0 || f[3] != strconv.Itoa(16<<10) {
			t.Errorf("-o wrote %d bytes, its first record is %v (magic, cpu, length, flags); want records of %d bytes, pages of %d", size, f[1:], rec, 16<<10)
		}
		if size < 2*2*rec {
			t.Errorf("-o wrote %d bytes: fewer than two pages a CPU", size)
		}
	})
}

// formatIDs reads the event IDs of names ("system/event") from the
// capture's meta/events.
func formatIDs(t testing.TB, out string, names ...string) map[string]uint16 {
	t.Helper()
	ids := map[string]uint16{}
	for _, n := range names {
		b, err := os.ReadFile(filepath.Join(out, "meta", "events", n, "format"))
		if err != nil {
			t.Fatal(err)
		}
		for _, line := range strings.Split(string(b), "\n") {
			if v, ok := strings.CutPrefix(line, "ID: "); ok {
				id, err := strconv.ParseUint(strings.TrimSpace(v), 10, 16)
				if err != nil {
					t.Fatalf("%s format: %q", n, line)
				}
				ids[n] = uint16(id)
			}
		}
		if _, ok := ids[n]; !ok {
			t.Fatalf("%s format: no ID", n)
		}
	}
	return ids
}

// scanWith reads path page by page with layout l, as scanRaw does with
// the default one, and calls fn for every event. A missing file is an
// empty capture.
func scanWith(path string, l ringbuf.Layout, fn func(ringbuf.Record)) (cpuCapture, error) {
	data, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return cpuCapture{}, nil
	}
	if err != nil {
		return cpuCapture{}, err
	}
	c := cpuCapture{Bytes: int64(len(data)), Partial: len(data) % l.PageSize}
	for off := 0; off+l.PageSize <= len(data); off += l.PageSize {
		ps, err := ringbuf.ParsePage(l, data[off:off+l.PageSize], func(r ringbuf.Record) error {
			fn(r)
			return nil
		})
		if err != nil {
			return c, fmt.Errorf("%s: page %d (offset %d): %w", path, c.Pages, off, err)
		}
		c.Pages++
		c.Events += int64(ps.Events)
		if ps.Missed {
			c.MissedPages++
			if ps.MissedCount == 0 {
				c.Unstored++
			}
			c.MissedStored += ps.MissedCount
		}
	}
	return c, nil
}
