package tracedat

import (
	"bytes"
	"crypto/rand"
	"fmt"
	"maps"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"github.com/vtrace/vtrace/host/meta"
	"github.com/vtrace/vtrace/host/tracedat/tracedattest"
	"github.com/vtrace/vtrace/internal/testutil"
	"github.com/vtrace/vtrace/proto/ringbuf"
)

// report runs trace-cmd report on file and returns its standard output.
func report(t *testing.T, file string, args ...string) string {
	t.Helper()
	tc := testutil.NeedProgram(t, "trace-cmd", "trace-cmd")
	cmd := exec.Command(tc, append([]string{"report", "-i", file}, args...)...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("trace-cmd report %s: %v\n%s", strings.Join(args, " "), err, stderr.String())
	}
	if s := stderr.String(); s != "" {
		t.Logf("trace-cmd report stderr:\n%s", s)
	}
	return stdout.String()
}

// eventLine matches an event line of trace-cmd report: "comm-pid [cpu] ts: name:".
var eventLine = regexp.MustCompile(`^\s*(.+)-(\d+)\s+\[(\d+)\]\s+(?:\S+\s+)?(\d+\.\d+):\s+([A-Za-z0-9_]+):`)

type reportEvent struct {
	comm string
	pid  int
	cpu  int
	name string
	line string
}

func parseReport(out string) (events []reportEvent, dropped []string) {
	for _, line := range strings.Split(out, "\n") {
		if strings.Contains(line, "EVENTS DROPPED") {
			dropped = append(dropped, line)
			continue
		}
		m := eventLine.FindStringSubmatch(line)
		if m == nil {
			continue
		}
		pid, _ := strconv.Atoi(m[2])
		cpu, _ := strconv.Atoi(m[3])
		events = append(events, reportEvent{comm: strings.TrimSpace(m[1]), pid: pid, cpu: cpu, name: m[5], line: line})
	}
	return events, dropped
}

func TestIntegrationTraceCmdReadsCapture(t *testing.T) {
	testutil.NeedProgram(t, "trace-cmd", "trace-cmd")
	inst := testutil.Instance(t, "vtrace-tracedat")
	l := layoutOf(t, inst)
	out := t.TempDir()
	pids := tracedattest.Record(t, inst, out, 6)
	if err := meta.Gather(inst, filepath.Join(out, "meta")); err != nil {
		t.Fatal(err)
	}
	s, err := meta.Load(filepath.Join(out, "meta"))
	if err != nil {
		t.Fatal(err)
	}
	cpus, err := CaptureCPUs(out)
	if err != nil {
		t.Fatal(err)
	}
	dat := filepath.Join(out, "trace.dat")
	res, err := WriteFile(dat, s, cpus, Options{}, false)
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range res.CPUs {
		if c.Offset%int64(l.PageSize) != 0 || c.Dropped != 0 {
			t.Errorf("CPU %d: offset %d (page size %d), %d bytes dropped", c.CPU, c.Offset, l.PageSize, c.Dropped)
		}
	}

	// Our page reader, the kernel and trace-cmd must agree per CPU.
	ours, total := countEvents(t, l, inst, cpus)
	// -N: no plugins, so fields print through the formats we wrote.
	events, dropped := parseReport(report(t, dat, "-N"))
	theirs := perCPU(events)
	for cpu, n := range ours {
		if theirs[cpu] != n {
			t.Errorf("CPU %d: trace-cmd shows %d events, ringbuf counts %d", cpu, theirs[cpu], n)
		}
	}
	if int64(len(events)) != total || total == 0 {
		t.Errorf("trace-cmd shows %d events, ringbuf counts %d", len(events), total)
	}
	if len(dropped) != 0 {
		t.Errorf("a capture with room to spare shows drops: %q", dropped)
	}

	// The decoded fields name the known workload: every probe is switched
	// out when it sleeps (prev_comm, prev_pid), and the next_* fields name a
	// probe switched in. The switch in is asked of one probe, not each: this
	// host's kernel (6.18) at times records no sched_switch from idle into a
	// task woken on that CPU (the kernel's own count agrees: nothing is lost
	// on our side), while the switch out at sleep is always there.
	sawAnyIn := false
	for _, pid := range pids {
		in := fmt.Sprintf("next_comm=%s next_pid=%d ", tracedattest.ProbeComm, pid)
		outOf := fmt.Sprintf("prev_comm=%s prev_pid=%d ", tracedattest.ProbeComm, pid)
		var sawOut bool
		for _, e := range events {
			if e.name != "sched_switch" {
				continue
			}
			sawAnyIn = sawAnyIn || strings.Contains(e.line, in)
			sawOut = sawOut || strings.Contains(e.line, outOf)
		}
		if !sawOut {
			t.Errorf("pid %d: no sched_switch out of it (prev_comm=%s prev_pid=%d)", pid, tracedattest.ProbeComm, pid)
		}
	}
	if !sawAnyIn {
		t.Errorf("no sched_switch into any of the probes %v (next_comm=%s)", pids, tracedattest.ProbeComm)
	}
	for i := 0; i < 3; i++ {
		want := fmt.Sprintf("vtrace-marker-%d", i)
		found := false
		for _, e := range events {
			found = found || (strings.Contains(e.line, want) && e.name == "print")
		}
		if !found {
			t.Errorf("trace-cmd does not show the trace_marker write %q", want)
		}
	}

	// The CPUSTAT options: trace-cmd report --stat prints the kernel's
	// per-CPU statistics as they were when the metadata was gathered.
	stat := report(t, dat, "--stat")
	for cpu, n := range ours {
		want := fmt.Sprintf("CPU: %d\nentries: 0\n", cpu)
		if !strings.Contains(stat, want) || !strings.Contains(stat, fmt.Sprintf("read events: %d\n", n)) {
			t.Errorf("trace-cmd report --stat lacks CPU %d with %d read events:\n%s", cpu, n, stat)
		}
	}
	t.Logf("%d events on %d CPUs, trace.dat of %d bytes", total, len(cpus), res.Size)
}

// A ring buffer far too small for its load, read only after the load, loses
// events: the first page read carries the missed-events flag, and
// trace-cmd must show its drop marker there.
func TestIntegrationTraceCmdShowsDrops(t *testing.T) {
	testutil.NeedProgram(t, "trace-cmd", "trace-cmd")
	inst := testutil.Instance(t, "vtrace-tracedat-drops")
	l := layoutOf(t, inst)
	tracedattest.Write(t, inst, "buffer_size_kb", "8")
	tracedattest.Write(t, inst, "events/sched/sched_switch/enable", "1")
	tracedattest.Write(t, inst, "tracing_on", "1")
	marker, err := os.OpenFile(filepath.Join(inst, "trace_marker"), os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 3000; i++ {
		if _, err := fmt.Fprintf(marker, "vtrace-flood-%d", i); err != nil {
			t.Fatal(err)
		}
	}
	marker.Close()
	tracedattest.Write(t, inst, "tracing_on", "0")

	out := t.TempDir()
	tracedattest.Drain(t, inst, out, l.PageSize)
	s, cpus := captured(t, inst, out)
	var total, missedPages int64
	flagged := map[string]bool{}
	for _, c := range cpus {
		st, err := ringbuf.ScanFile(l, c.Path, nil)
		if err != nil {
			t.Fatal(err)
		}
		total += st.Events
		missedPages += st.MissedPages
		if st.MissedPages > 0 {
			flagged[fmt.Sprintf("CPU:%d ", c.CPU)] = true
		}
	}
	if missedPages == 0 {
		t.Fatalf("no page carries the missed-events flag after 3000 writes into an 8 KiB buffer")
	}
	// Each format shows the drops where the pages flag them.
	// (The zero Options is v6; zstd alone selects v7.)
	for _, c := range []struct {
		name string
		o    Options
	}{{"v6", Options{}}, {"v7", Options{Format: FormatV7}}, {"v7-zstd", Options{Compression: CompressZstd}}} {
		name, o := c.name, c.o
		dat := filepath.Join(out, name+".dat")
		if _, err := WriteFile(dat, s, cpus, o, false); err != nil {
			t.Fatal(err)
		}
		events, dropped := parseReport(report(t, dat, "-N"))
		if len(dropped) == 0 {
			t.Errorf("%s: trace-cmd shows no EVENTS DROPPED marker; %d pages of ours are flagged", name, missedPages)
		}
		for _, d := range dropped {
			cpu, _, _ := strings.Cut(strings.TrimSpace(d), "[")
			if !flagged[cpu] {
				t.Errorf("%s: trace-cmd marks drops on %q, our flagged CPUs are %v", name, d, flagged)
			}
		}
		if int64(len(events)) != total {
			t.Errorf("%s: trace-cmd shows %d events, ringbuf counts %d", name, len(events), total)
		}
		t.Logf("%s: %d events kept, %d flagged pages, trace-cmd says %q", name, total, missedPages, dropped)
	}
}

// traceCmd runs trace-cmd with args and returns its standard output and
// error; a failed run fails the test.
func traceCmd(t *testing.T, args ...string) (stdout, stderr string) {
	t.Helper()
	tc := testutil.NeedProgram(t, "trace-cmd", "trace-cmd")
	cmd := exec.Command(tc, args...)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	if err := cmd.Run(); err != nil {
		t.Fatalf("trace-cmd %s: %v\n%s", strings.Join(args, " "), err, errb.String())
	}
	return out.String(), errb.String()
}

var offsetLine = regexp.MustCompile(`(?m)^CPU\d+ data recorded at offset=0x[0-9a-f]+$`)

// The same capture written as v6, v7 and v7 with zstd: trace-cmd 3.1 and
// KernelShark's library (libkshark) read all three to the same events, per
// CPU as many as our page reader and the kernel count, and trace-cmd's own
// checks of the v7 files find nothing to say.
func TestIntegrationTraceCmdReadsV7(t *testing.T) {
	testutil.NeedProgram(t, "trace-cmd", "trace-cmd")
	inst := testutil.Instance(t, "vtrace-tracedat-v7")
	l := layoutOf(t, inst)
	out := t.TempDir()
	tracedattest.Record(t, inst, out, 4)
	s, cpus := captured(t, inst, out)
	ours, total := countEvents(t, l, inst, cpus)
	if total == 0 {
		t.Fatal("the capture holds no events")
	}

	kshark := buildKshark(t)
	var v6Report, v6Stat string
	for _, o := range []Options{
		{Format: FormatV6},
		{Format: FormatV7, Compression: CompressNone},
		{Format: FormatV7, Compression: CompressZstd},
	} {
		name := fmt.Sprintf("%v-%s", o.Format, o.Compression)
		dat := filepath.Join(out, name+".dat")
		res, err := WriteFile(dat, s, cpus, o, false)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		rep, rerr := traceCmd(t, "report", "-i", dat, "-N")
		if rerr != "" {
			t.Errorf("%s: trace-cmd report complains: %s", name, rerr)
		}
		events, dropped := parseReport(rep)
		theirs := map[int]int64{}
		for _, e := range events {
			theirs[e.cpu]++
		}
		for cpu, n := range ours {
			if theirs[cpu] != n {
				t.Errorf("%s: CPU %d: trace-cmd shows %d events, ringbuf counts %d", name, cpu, theirs[cpu], n)
			}
		}
		if int64(len(events)) != total || len(dropped) != 0 {
			t.Errorf("%s: trace-cmd shows %d events and drops %q; ringbuf counts %d, no drops", name, len(events), dropped, total)
		}
		// KernelShark loads the same events from each file.
		ks, ksTotal := ksharkCount(t, kshark, dat)
		if ksTotal != total || !maps.Equal(ks, ours) {
			t.Errorf("%s: KernelShark loads %d events %v; ringbuf counts %d %v", name, ksTotal, ks, total, ours)
		}
		// --stat: the CPUSTAT options, then per CPU where its pages sit
		// (a file offset, or in a compressed file one in the decompressed
		// data) and their size, which must agree.
		stat := offsetLine.ReplaceAllString(report(t, dat, "--stat"), "")
		if o.Format == FormatV6 {
			v6Report, v6Stat = rep, stat
			continue
		}
		// Every line, not only the counts: v7 and v6 read the same.
		if rep != v6Report {
			t.Errorf("%s: trace-cmd report differs from v6's (%d and %d bytes)", name, len(rep), len(v6Report))
		}
		if stat != v6Stat {
			t.Errorf("%s: trace-cmd report --stat differs from v6's:\n%s\nv6:\n%s", name, stat, v6Stat)
		}
		sum, serr := traceCmd(t, "dump", "--summary", "-i", dat)
		want := fmt.Sprintf("%s\t[Compression algorithm]", o.Compression)
		if serr != "" || !strings.Contains(sum, "7\t[Version]") || !strings.Contains(sum, want) ||
			!strings.Contains(sum, "[9 sections]") {
			t.Errorf("%s: trace-cmd dump --summary (stderr %q):\n%s", name, serr, sum)
		}
		valid, verr := traceCmd(t, "dump", "-v", "-i", dat)
		if verr != "" || !strings.Contains(valid, "is a valid trace-cmd file") {
			t.Errorf("%s: trace-cmd dump -v: %q, stderr %q", name, valid, verr)
		}
		var pages, stored int64
		for _, c := range res.CPUs {
			pages += c.Size
			stored += c.Stored
		}
		t.Logf("%s: %d bytes, %d of pages stored in %d", name, res.Size, pages, stored)
	}
}

// layoutOf reads the page layout of the instance inst.
func layoutOf(t *testing.T, inst string) ringbuf.Layout {
	t.Helper()
	l, err := ringbuf.LayoutFromTracefs(inst)
	if err != nil {
		t.Fatal(err)
	}
	return l
}

// captured returns the metadata of the instance inst and the per-CPU files
// of its capture in out.
func captured(t *testing.T, inst, out string) (*meta.Set, []CPUData) {
	t.Helper()
	s, err := meta.FromTracefs(inst)
	if err != nil {
		t.Fatal(err)
	}
	cpus, err := CaptureCPUs(out)
	if err != nil {
		t.Fatal(err)
	}
	return s, cpus
}

// perCPU counts trace-cmd's events by CPU.
func perCPU(events []reportEvent) map[int]int64 {
	n := map[int]int64{}
	for _, e := range events {
		n[e.cpu]++
	}
	return n
}

// countEvents counts the events of each CPU's file with the page reader,
// checking that they are the events the kernel says it read from inst; it
// returns them by CPU and in all.
func countEvents(t *testing.T, l ringbuf.Layout, inst string, cpus []CPUData) (map[int]int64, int64) {
	t.Helper()
	ours := map[int]int64{}
	var total int64
	for _, c := range cpus {
		st, err := ringbuf.ScanFile(l, c.Path, nil)
		if err != nil {
			t.Fatal(err)
		}
		ours[c.CPU] = st.Events
		total += st.Events
		if k := testutil.CPUStat(t, inst, c.CPU, "read events"); k != st.Events {
			t.Errorf("CPU %d: kernel read events %d, ringbuf counts %d", c.CPU, k, st.Events)
		}
	}
	return ours, total
}

// corruptPage returns a random page the page reader refuses.
func corruptPage(t *testing.T, l ringbuf.Layout) []byte {
	t.Helper()
	p := make([]byte, l.PageSize)
	for {
		if _, err := rand.Read(p); err != nil {
			t.Fatal(err)
		}
		if _, err := ringbuf.ParsePage(l, p, nil); err != nil {
			return p
		}
	}
}

// TestIntegrationTraceCmdReadsAroundBadPages: a real capture with a random
// page at the start of one CPU's file and another in the middle of the
// busiest CPU's: in every format trace-cmd reads every event of every good
// page (as many per CPU as the page reader counts, skipping the bad ones),
// and the writer names both bad pages.
func TestIntegrationTraceCmdReadsAroundBadPages(t *testing.T) {
	testutil.NeedProgram(t, "trace-cmd", "trace-cmd")
	inst := testutil.Instance(t, "vtrace-tracedat-bad")
	l := layoutOf(t, inst)
	out := t.TempDir()
	tracedattest.Record(t, inst, out, 40)
	s, cpus := captured(t, inst, out)
	// The busiest CPU gets a bad page in its middle, another (or the same
	// on a one-CPU machine) one at its start.
	busy, size := cpus[0], int64(-1)
	for _, c := range cpus {
		if fi, err := os.Stat(c.Path); err == nil && fi.Size() > size {
			busy, size = c, fi.Size()
		}
	}
	first := cpus[len(cpus)-1]
	if first.CPU == busy.CPU {
		first = cpus[0]
	}
	pages := size / int64(l.PageSize)
	if pages < 3 {
		t.Fatalf("CPU %d recorded %d pages, want 3 or more to corrupt one in the middle", busy.CPU, pages)
	}
	mid := pages / 2
	raw, _ := os.ReadFile(busy.Path)
	copy(raw[mid*int64(l.PageSize):], corruptPage(t, l))
	os.WriteFile(busy.Path, raw, 0o644)
	raw, _ = os.ReadFile(first.Path)
	os.WriteFile(first.Path, append(corruptPage(t, l), raw...), 0o644)

	ours := map[int]int64{}
	var total int64
	for _, c := range cpus {
		st, err := ringbuf.ScanFileSkipping(l, c.Path, nil, nil)
		if err != nil {
			t.Fatal(err)
		}
		ours[c.CPU] = st.Events
		total += st.Events
	}
	wantBad := []BadPage{{CPU: busy.CPU, Index: mid}, {CPU: first.CPU, Index: 0}}
	if first.CPU < busy.CPU {
		wantBad[0], wantBad[1] = wantBad[1], wantBad[0]
	}
	for _, o := range []Options{{Format: FormatV6}, {Format: FormatV7}, {Format: FormatV7, Compression: CompressZstd}} {
		name := fmt.Sprintf("%v-%s", o.Format, o.Compression)
		dat := filepath.Join(out, name+".dat")
		res, err := WriteFile(dat, s, cpus, o, false)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		var bad []BadPage
		for _, b := range res.BadPages {
			bad = append(bad, BadPage{CPU: b.CPU, Index: b.Index})
		}
		if fmt.Sprint(bad) != fmt.Sprint(wantBad) {
			t.Errorf("%s: bad pages %v, want %v", name, bad, wantBad)
		}
		rep, rerr := traceCmd(t, "report", "-i", dat, "-N")
		events, _ := parseReport(rep)
		theirs := map[int]int64{}
		for _, e := range events {
			theirs[e.cpu]++
		}
		for cpu, n := range ours {
			if theirs[cpu] != n {
				t.Errorf("%s: CPU %d: trace-cmd shows %d events, the good pages hold %d (stderr %q)", name, cpu, theirs[cpu], n, rerr)
			}
		}
		if int64(len(events)) != total || total == 0 {
			t.Errorf("%s: trace-cmd shows %d events, the good pages hold %d", name, len(events), total)
		}
	}
}
