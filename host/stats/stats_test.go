package stats

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/vtrace/vtrace/host/meta"
	"github.com/vtrace/vtrace/host/tracedat"
	"github.com/vtrace/vtrace/host/tracedat/tracedattest"
	"github.com/vtrace/vtrace/internal/testutil"
)

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
	if len(r.CPUs) != 2 || !r.CPUs[0].Truncated || r.CPUs[0].Err != nil || r.CPUs[1].Err == nil {
		t.Fatalf("CPUs %+v: want cpu0 truncated, cpu1 stopped by a corrupt page", r.CPUs)
	}
	if r.CPUs[1].Stats.Pages != 1 {
		t.Errorf("cpu1: %d pages counted before the corrupt one, want 1", r.CPUs[1].Stats.Pages)
	}
	var buf bytes.Buffer
	r.WriteTable(&buf)
	for _, want := range []string{"no metadata", "3 trailing bytes", "stopped:", "id "} {
		if !strings.Contains(buf.String(), want) {
			t.Errorf("table lacks %q:\n%s", want, buf.String())
		}
	}
}
