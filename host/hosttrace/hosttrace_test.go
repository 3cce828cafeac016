package hosttrace_test

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/vtrace/vtrace/host/hosttrace"
	"github.com/vtrace/vtrace/host/tracedat"
	"github.com/vtrace/vtrace/internal/sys"
	"github.com/vtrace/vtrace/internal/testutil"
	"github.com/vtrace/vtrace/proto/ringbuf"
)

// TestIntegrationRecordHost: markers written while recording reach the
// cpuN.raw files, stamped by the clock asked for between readings of it;
// the events asked for are recorded; the metadata names them; the instance
// is gone after Stop.
func TestIntegrationRecordHost(t *testing.T) {
	root := testutil.Tracefs(t)
	out := t.TempDir()
	r, err := hosttrace.Start(hosttrace.Config{Tracefs: root, Events: []string{"sched:sched_process_exec"}, Clock: "mono", Out: out})
	if err != nil {
		t.Fatal(err)
	}
	dir := r.Dir()
	if b, _ := os.ReadFile(filepath.Join(dir, "trace_clock")); !strings.Contains(string(b), "[mono]") {
		t.Errorf("trace_clock %q, want mono", b)
	}
	mono, _ := sys.TraceClockByName("mono")
	const n = 100
	var before, after [n]int64
	for i := range n {
		before[i], _ = mono.Now()
		if err := r.Mark(fmt.Sprintf("hosttest %d\n", i)); err != nil {
			t.Fatal(err)
		}
		after[i], _ = mono.Now()
	}
	bin := testutil.BuildVtrace(t) // any exec makes a sched_process_exec
	if err := runTrue(bin); err != nil {
		t.Fatal(err)
	}
	s, err := r.Stop()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(dir); !os.IsNotExist(err) {
		t.Errorf("instance %s still there after Stop: %v", dir, err)
	}
	if err := r.Mark("late\n"); err == nil {
		t.Error("Mark after Stop: no error")
	}
	if s.Formats["sched"]["sched_process_exec"] == nil || !strings.Contains(s.Clock, "[mono]") || len(s.CPUStats) == 0 {
		t.Errorf("metadata: exec format %t, clock %q, %d CPU stats", s.Formats["sched"]["sched_process_exec"] != nil, s.Clock, len(s.CPUStats))
	}
	l, err := s.Layout()
	if err != nil {
		t.Fatal(err)
	}
	ids := map[uint16]string{}
	for sys, evs := range s.Formats {
		for ev, f := range evs {
			var id int
			if i := bytes.Index(f, []byte("\nID: ")); i >= 0 {
				fmt.Sscanf(string(f[i+5:]), "%d", &id)
			}
			ids[uint16(id)] = sys + ":" + ev
		}
	}
	cpus, err := tracedat.CaptureCPUs(out)
	if err != nil {
		t.Fatal(err)
	}
	seen, execs := 0, 0
	for _, c := range cpus {
		fi, _ := os.Stat(c.Path)
		if fi.Size()%int64(l.PageSize) != 0 {
			t.Errorf("%s: %d bytes, not whole pages", c.Path, fi.Size())
		}
		_, err := ringbuf.ScanFile(l, c.Path, func(rec ringbuf.Record) error {
			switch ids[rec.Type()] {
			case "sched:sched_process_exec":
				execs++
			case "ftrace:print":
				var k int
				i := bytes.Index(rec.Payload, []byte("hosttest "))
				if i < 0 {
					return nil
				}
				fmt.Sscanf(string(rec.Payload[i+9:]), "%d", &k)
				seen++
				if ts := int64(rec.TS); ts < before[k] || ts > after[k] {
					t.Errorf("marker %d stamped %d, outside [%d, %d]", k, ts, before[k], after[k])
				}
			}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	if seen != n || execs == 0 {
		t.Errorf("%d markers (want %d), %d sched_process_exec (want some)", seen, n, execs)
	}
}

func runTrue(bin string) error {
	p, err := os.StartProcess(bin, []string{bin, "--help"}, &os.ProcAttr{})
	if err != nil {
		return err
	}
	_, err = p.Wait()
	return err
}

// TestIntegrationRecordHostRefuses: what the host's tracefs does not have
// is named, and no instance is left; an instance of a process that is gone
// is removed by the next Start.
func TestIntegrationRecordHostRefuses(t *testing.T) {
	root := testutil.Tracefs(t)
	stale := filepath.Join(root, "instances", "vtrace-host-999999999")
	if err := os.Mkdir(stale, 0o755); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.Remove(stale) })
	for _, tc := range []struct {
		cfg  hosttrace.Config
		want string
	}{
		{hosttrace.Config{Events: []string{"sched:no_such_event"}}, "sched:no_such_event: not among the host's events"},
		{hosttrace.Config{Events: []string{"sched"}, Clock: "no_such_clock"}, "clock no_such_clock: not offered by the host"},
		{hosttrace.Config{Events: []string{"../sched"}}, `event "../sched"`},
		{hosttrace.Config{}, "no events"},
	} {
		tc.cfg.Tracefs, tc.cfg.Out = root, t.TempDir()
		r, err := hosttrace.Start(tc.cfg)
		if err == nil {
			r.Abort()
			t.Errorf("%+v: started", tc.cfg)
			continue
		}
		if !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%+v: %v, want it to say %q", tc.cfg, err, tc.want)
		}
	}
	if _, err := os.Stat(filepath.Join(root, "instances", fmt.Sprintf("vtrace-host-%d", os.Getpid()))); !os.IsNotExist(err) {
		t.Errorf("an instance of this process is left: %v", err)
	}
	if _, err := os.Stat(stale); !os.IsNotExist(err) {
		t.Errorf("the stale instance is still there: %v", err)
	}
}
