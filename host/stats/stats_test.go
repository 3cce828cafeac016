package stats

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"strings"
	"testing"

	"github.com/vtrace/vtrace/host/meta"
	"github.com/vtrace/vtrace/host/tracedat"
	"github.com/vtrace/vtrace/host/tracedat/tracedattest"
	"github.com/vtrace/vtrace/internal/sys"
	"github.com/vtrace/vtrace/internal/testutil"
	"github.com/vtrace/vtrace/proto/ringbuf"
)

const metaFixture = "../meta/testdata/tracefs"

// Per-event counts must match what trace-cmd decodes from the same pages.
func TestIntegrationStatsMatchTraceCmd(t *testing.T) {
	tc := testutil.NeedProgram(t, "trace-cmd", "trace-cmd")
	inst := testutil.Instance(t, "vtrace-stats")
	out := t.TempDir()
	tracedattest.Record(t, inst, out, 2)
	s, err := meta.FromTracefs(inst)
	if err != nil {
		t.Fatal(err)
	}
	r, err := Collect(out, s)
	if err != nil {
		t.Fatal(err)
	}
	cpus, err := tracedat.CaptureCPUs(out)
	if err != nil {
		t.Fatal(err)
	}
	dat := filepath.Join(out, "trace.dat")
	if _, err := tracedat.WriteFile(dat, s, cpus, tracedat.Options{}, false); err != nil {
		t.Fatal(err)
	}
	rep, err := exec.Command(tc, "report", "-N", "-i", dat).Output()
	if err != nil {
		t.Fatalf("trace-cmd report: %v", err)
	}
	line := regexp.MustCompile(`\[\d+\]\s+\d+\.\d+:\s+([A-Za-z0-9_]+):`)
	theirs := map[string]int64{}
	for _, l := range strings.Split(string(rep), "\n") {
		if m := line.FindStringSubmatch(l); m != nil {
			theirs[m[1]]++
		}
	}
	ours := map[string]int64{}
	for _, e := range r.Events {
		if e.CPU == -1 || len(r.CPUs) == 1 {
			_, name, _ := strings.Cut(e.Name, ":")
			ours[name] += e.Count
		}
	}
	for name, n := range theirs {
		if ours[name] != n {
			t.Errorf("%s: trace-cmd shows %d, stats counts %d", name, n, ours[name])
		}
	}
	if len(ours) != len(theirs) || ours["sched_switch"] == 0 {
		t.Errorf("event names: stats %v, trace-cmd %v", ours, theirs)
	}
	var buf bytes.Buffer
	if err := r.WriteTable(&buf); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(buf.String(), "sched:sched_switch") || !strings.Contains(buf.String(), "trace clock local") {
		t.Errorf("table lacks names or clock:\n%s", buf.String())
	}
	t.Logf("\n%s", buf.String())
}

func TestStatsWithoutMetaAndDamagedFiles(t *testing.T) {
	raw, err := os.ReadFile("../../proto/ringbuf/testdata/sched-irq.pages")
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "cpu0.raw"), append(raw[:4*4096:4*4096], 1, 2, 3), 0o644)
	bad := append([]byte(nil), raw[:2*4096]...)
	copy(bad[4096+8:], []byte{0xff, 0xff, 0xff, 0x07}) // commit beyond the page
	os.WriteFile(filepath.Join(dir, "cpu1.raw"), bad, 0o644)
	r, err := Collect(dir, nil)
	if err != nil {
		t.Fatal(err)
	}
	if len(r.CPUs) != 2 || !r.CPUs[0].Truncated || r.CPUs[0].Err != nil || r.CPUs[1].Err != nil {
		t.Fatalf("CPUs %+v: want cpu0 truncated, cpu1 read to its end", r.CPUs)
	}
	if c := r.CPUs[1]; c.Stats.Pages != 2 || c.Stats.CorruptPages != 1 || len(c.Bad) != 1 || c.Bad[0].Index != 1 {
		t.Errorf("cpu1: %d pages, %d corrupt, bad %v; want page 1 of 2 corrupt", c.Stats.Pages, c.Stats.CorruptPages, c.Bad)
	}
	var buf bytes.Buffer
	r.WriteTable(&buf)
	for _, want := range []string{"no metadata", "3 trailing bytes", "1 corrupt pages skipped", "WARNING: cpu1.raw: page 1 (offset 4096) is corrupt", "id "} {
		if !strings.Contains(buf.String(), want) {
			t.Errorf("table lacks %q:\n%s", want, buf.String())
		}
	}
}

// missedPage is a page of one event flagged for missed events, with the
// count stored after the data when count is not 0.
func missedPage(count uint64) []byte {
	p := make([]byte, 4096)
	binary.LittleEndian.PutUint64(p, 1000)
	binary.LittleEndian.PutUint32(p[16:], 2|1<<5) // one event of 8 bytes
	binary.LittleEndian.PutUint16(p[20:], 7)
	flags := uint64(1 << 31)
	if count > 0 {
		flags |= 1 << 30
		binary.LittleEndian.PutUint64(p[28:], count)
	}
	binary.LittleEndian.PutUint64(p[8:], 12|flags)
	return p
}

// TestStatsLostEvents: pages flagged without a count make the loss "at
// least" the counted ones plus one per such page; the kernel's counters,
// when the capture has them, are the figure shown. A CPU with no data and
// no counters, when others have counters, is not streamed, not zero.
func TestStatsLostEvents(t *testing.T) {
	dir := t.TempDir()
	raw := append(append(missedPage(40), missedPage(0)...), missedPage(0)...)
	os.WriteFile(filepath.Join(dir, "cpu0.raw"), raw, 0o644)
	os.WriteFile(filepath.Join(dir, "cpu1.raw"), raw, 0o644)
	os.WriteFile(filepath.Join(dir, "cpu2.raw"), nil, 0o644)
	r, err := Collect(dir, nil)
	if err != nil {
		t.Fatal(err)
	}
	if n, exact := r.CPUs[0].Lost(); n != 42 || exact {
		t.Errorf("without counters: lost %d (exact %v), want at least 42", n, exact)
	}
	var buf bytes.Buffer
	r.WriteTable(&buf)
	for _, want := range []string{"at least 42 (3 pages flagged, 2 without a count)", "WARNING: CPU 0 lost at least 42 events"} {
		if !strings.Contains(buf.String(), want) {
			t.Errorf("table without counters lacks %q:\n%s", want, buf.String())
		}
	}
	if strings.Contains(buf.String(), "not streamed") {
		t.Errorf("without counters, an empty CPU is said not streamed:\n%s", buf.String())
	}

	s, err := meta.Load(metaFixture)
	if err != nil {
		t.Fatal(err)
	}
	s.CPUStats = map[int][]byte{0: []byte("overrun: 164455\ncommit overrun: 0\ndropped events: 0\nread events: 3\n"), 1: []byte("overrun: 0\n")}
	r, err = Collect(dir, s)
	if err != nil {
		t.Fatal(err)
	}
	if n, exact := r.CPUs[0].Lost(); n != 164455 || !exact {
		t.Errorf("with counters: lost %d (exact %v), want 164455", n, exact)
	}
	buf.Reset()
	r.WriteTable(&buf)
	for _, want := range []string{"164455 (kernel counters; 3 pages flagged)", "not streamed"} {
		if !strings.Contains(buf.String(), want) {
			t.Errorf("table with counters lacks %q:\n%s", want, buf.String())
		}
	}
	if strings.Contains(buf.String(), "WARNING: CPU 0 lost at least") {
		t.Errorf("with the kernel's counters, the pages' lower bound is still warned about:\n%s", buf.String())
	}
	t.Logf("\n%s", buf.String())
}

// TestIntegrationStatsLostEvents: markers of one size flood a small buffer
// on CPU 0 between reads, so the kernel overwrites some each time and
// flags the first page read after; the markers fill pages exactly, so a
// flagged page has no room for the count. With the instance's own counters
// (a fresh instance: they count this recording), stats shows the kernel's
// figure; without them, what the flagged pages say: "at least", never
// more than the kernel's, exact only when every flagged page has a count.
func TestIntegrationStatsLostEvents(t *testing.T) {
	inst := testutil.Instance(t, "vtrace-stats-lost")
	l, err := ringbuf.LayoutFromTracefs(inst)
	if err != nil {
		t.Fatal(err)
	}
	tracedattest.Write(t, inst, "buffer_size_kb", "16")
	out := t.TempDir()
	var raw []byte
	// Pinned to CPU 0 for good: the thread, still locked, ends with the
	// test's goroutine, and no other test runs on it.
	runtime.LockOSThread()
	if err := sys.SetAffinity(0); err != nil {
		t.Fatal(err)
	}
	marker, err := os.OpenFile(filepath.Join(inst, "trace_marker"), os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer marker.Close()
	// 26 characters: with the newline and NUL the kernel adds, a print
	// event of 48 bytes; 85 of them fill a page's 4080 bytes.
	for cycle := range 20 {
		for i := range 600 {
			fmt.Fprintf(marker, "vtrace-lost-%04d-%08d", cycle, i)
		}
		tracedattest.Drain(t, inst, out, l.PageSize)
		b, err := os.ReadFile(filepath.Join(out, "cpu0.raw"))
		if err != nil {
			t.Fatal(err)
		}
		raw = append(raw, b...)
	}
	tracedattest.Write(t, inst, "tracing_on", "0")
	tracedattest.Drain(t, inst, out, l.PageSize)
	for _, cpu := range tracedattest.CPUs(t, inst) {
		os.Remove(filepath.Join(out, fmt.Sprintf("cpu%d.raw", cpu)))
	}
	if err := os.WriteFile(filepath.Join(out, "cpu0.raw"), raw, 0o644); err != nil {
		t.Fatal(err)
	}
	s, err := meta.FromTracefs(inst)
	if err != nil {
		t.Fatal(err)
	}
	s.CPUStats = map[int][]byte{0: s.CPUStats[0]}
	withCounters, err := Collect(out, s)
	if err != nil {
		t.Fatal(err)
	}
	s.CPUStats = nil
	pagesOnly, err := Collect(out, s)
	if err != nil {
		t.Fatal(err)
	}
	c, p := withCounters.CPUs[0], pagesOnly.CPUs[0]
	kernel := uint64(testutil.CPUStat(t, inst, 0, "overrun") + testutil.CPUStat(t, inst, 0, "commit overrun") +
		testutil.CPUStat(t, inst, 0, "dropped events"))
	if n, exact := c.Lost(); n != kernel || !exact {
		t.Errorf("with the kernel's counters: lost %d (exact %v), the kernel says %d", n, exact, kernel)
	}
	low, exact := p.Lost()
	t.Logf("the kernel lost %d; pages: %d flagged, %d without a count, at least %d", kernel, p.Stats.MissedPages, p.Stats.MissedUncounted, low)
	if kernel == 0 || p.Stats.MissedUncounted == 0 {
		t.Fatalf("%d lost, %d flagged pages without a count: the test's premise (full flagged pages) failed", kernel, p.Stats.MissedUncounted)
	}
	if low > kernel || exact || low != p.Stats.MissedEvents+uint64(p.Stats.MissedUncounted) {
		t.Errorf("from the pages: at least %d (exact %v); the kernel lost %d", low, exact, kernel)
	}
	var buf bytes.Buffer
	pagesOnly.WriteTable(&buf)
	want := fmt.Sprintf("at least %d (%d pages flagged, %d without a count)", low, p.Stats.MissedPages, p.Stats.MissedUncounted)
	if !strings.Contains(buf.String(), want) || !strings.Contains(buf.String(), "WARNING: CPU 0 lost at least") {
		t.Errorf("the table without counters lacks %q and its warning:\n%s", want, buf.String())
	}
	buf.Reset()
	withCounters.WriteTable(&buf)
	if want := fmt.Sprintf("%d (kernel counters;", kernel); !strings.Contains(buf.String(), want) {
		t.Errorf("the table with counters lacks %q:\n%s", want, buf.String())
	}
	t.Logf("\n%s", buf.String())
}

// subbufPage is a page of size bytes holding events events of 8 data
// bytes (12 with their header).
func subbufPage(size, events int) []byte {
	p := make([]byte, size)
	binary.LittleEndian.PutUint64(p, 1000)
	for i := range events {
		binary.LittleEndian.PutUint32(p[16+12*i:], 2|1<<5)
		binary.LittleEndian.PutUint16(p[20+12*i:], 7)
	}
	binary.LittleEndian.PutUint64(p[8:], uint64(12*events))
	return p
}

// TestStatsPageSize: a capture without metadata is read in pages of
// --page-size; with metadata, the header_page's size is the one, and a
// page size that disagrees is an error.
func TestStatsPageSize(t *testing.T) {
	dir := t.TempDir()
	page := 16 << 10
	raw := append(subbufPage(page, 3), subbufPage(page, 600)...) // the second one's events reach past 4 KiB
	os.WriteFile(filepath.Join(dir, "cpu0.raw"), raw, 0o644)
	r, err := CollectPages(dir, nil, page)
	if err != nil {
		t.Fatal(err)
	}
	if c := r.CPUs[0].Stats; c.Pages != 2 || c.Events != 603 || c.CorruptPages != 0 || r.PageSize != page {
		t.Errorf("pages of %d: %d pages, %d events, %d corrupt, page size %d; want 2, 603, 0, %d", page, c.Pages, c.Events, c.CorruptPages, r.PageSize, page)
	}
	var buf bytes.Buffer
	r.WriteTable(&buf)
	if !strings.Contains(buf.String(), fmt.Sprintf("pages of %d bytes", page)) {
		t.Errorf("the table does not give the page size:\n%s", buf.String())
	}
	if r, err := Collect(dir, nil); err != nil || r.CPUs[0].Stats.Events == 603 {
		t.Errorf("the same file in pages of 4096: %v, %+v; want other counts", err, r.CPUs[0].Stats)
	}
	if _, err := CollectPages(dir, nil, 5000); err == nil {
		t.Errorf("a page size of 5000: no error")
	}
	s, err := meta.Load(metaFixture)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := CollectPages(dir, s, page); err == nil || !strings.Contains(err.Error(), "header_page says 4096") {
		t.Errorf("pages of %d against a header_page of 4096: %v, want an error saying so", page, err)
	}
}
