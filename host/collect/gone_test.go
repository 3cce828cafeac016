package collect_test

import (
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/vtrace/vtrace/host/collect"
	"github.com/vtrace/vtrace/internal/testutil"
)

// TestIntegrationCollectAgentSilent: an agent that stops answering while it
// records (stopped with SIGSTOP, as a guest kernel that panicked leaves qemu
// running and the agent silent) ends the capture by itself: Run returns
// ErrGuestGone, the summary says when and why, and the capture is whole
// pages with its metadata and a trace.dat that trace-cmd reads.
func TestIntegrationCollectAgentSilent(t *testing.T) {
	tc := testutil.NeedProgram(t, "trace-cmd", "trace-cmd")
	inst, _, dir := loopback(t, "vtrace-collect-silent")
	writeTracefs(t, filepath.Join(inst, "events/sched/sched_switch/enable"), "1")
	ag := testutil.StartAgent(t, testutil.AgentOptions{Tracefs: inst, Dir: dir})
	defer ag.Signal(syscall.SIGCONT) // before the cleanup's SIGTERM
	out := filepath.Join(t.TempDir(), "capture")
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute) // a guard, not a measure
	defer cancel()
	sum, err := collect.RunStarted(ctx, collect.Config{Dir: dir, Out: out, Start: true, OrderTimeout: 30 * time.Second,
		QuietCheck: 300 * time.Millisecond, AliveTimeout: time.Second},
		func() {
			time.Sleep(200 * time.Millisecond) // some pages
			ag.Signal(syscall.SIGSTOP)
		})
	if ctx.Err() != nil {
		t.Fatal("collect did not end by itself")
	}
	if !errors.Is(err, collect.ErrGuestGone) || sum.Gone == nil || !strings.Contains(sum.Gone.Why, "stopped answering") {
		t.Fatalf("Run: %v, gone %+v; want ErrGuestGone for an agent that stopped answering", err, sum.Gone)
	}
	var b strings.Builder
	sum.Write(&b)
	t.Logf("summary:\n%s", b.String())
	if !strings.Contains(b.String(), "WARNING: the guest went away at ") {
		t.Errorf("the summary does not say the guest went away")
	}
	checkGoneCapture(t, tc, out, sum)

	// The agent, resumed, still records: a plain collector reads what it
	// pushes at its SIGTERM, so that it exits cleanly.
	ag.Signal(syscall.SIGCONT)
	testutil.StartVtrace(t, "host", "collect", "--dir", dir, "-o", filepath.Join(t.TempDir(), "rest"), "--quiet")
	ag.Stop(t)
}

// checkGoneCapture checks the capture of a guest that went away: whole
// pages, metadata, a trace.dat that trace-cmd reads with as many events as
// the page reader counted.
func checkGoneCapture(t *testing.T, tc, out string, sum collect.Summary) {
	t.Helper()
	var events int64
	for _, c := range sum.CPUs {
		events += c.Stats.Events
		if c.Bytes%int64(sum.PageSize) != 0 {
			t.Errorf("cpu %d: %d bytes, not whole pages", c.CPU, c.Bytes)
		}
		if fi, err := os.Stat(c.File); err != nil || fi.Size() != c.Bytes {
			t.Errorf("cpu %d: %s: %v, want %d bytes", c.CPU, c.File, err, c.Bytes)
		}
	}
	if sum.TraceDat == "" {
		t.Fatalf("no trace.dat; notes: %q", sum.Notes)
	}
	if _, err := os.Stat(filepath.Join(out, "meta", "events", "header_page")); err != nil {
		t.Errorf("no metadata: %v", err)
	}
	names, _ := report(t, tc, sum.TraceDat)
	var n int64
	for _, c := range names {
		n += int64(c)
	}
	if n != events || n == 0 {
		t.Errorf("trace-cmd reads %d events in %s, the page reader counted %d; want equal and some", n, sum.TraceDat, events)
	}
}

// TestIntegrationCollectGuests runs `vtrace host collect` with two
// guests (two agents on this machine, --dir NAME=DIR) and kills one agent
// mid-capture, which takes its end of the control channel away as qemu's
// exit does: that guest's capture ends by itself and says so, the other
// goes on to --duration and loses nothing; each capture is whole pages with
// a trace.dat that trace-cmd reads; the summary has a row per guest and
// CPU and the spread of the start orders; collect exits with status 1.
func TestIntegrationCollectGuests(t *testing.T) {
	tc := testutil.NeedProgram(t, "trace-cmd", "trace-cmd")
	instA, cpus, dirA := loopback(t, "vtrace-collect-guest-a")
	instB, _, dirB := loopback(t, "vtrace-collect-guest-b")
	for _, inst := range []string{instA, instB} {
		writeTracefs(t, filepath.Join(inst, "events/sched/sched_switch/enable"), "1")
	}
	testutil.StartAgent(t, testutil.AgentOptions{Tracefs: instA, Dir: dirA})
	agB := testutil.StartAgent(t, testutil.AgentOptions{Tracefs: instB, Dir: dirB})
	out := filepath.Join(t.TempDir(), "capture")
	col := testutil.StartVtrace(t, "host", "collect", "--dir", "a="+dirA, "--dir", "b="+dirB, "-o", out, "--start",
		"--duration", "6s", "--timeout", "30s")
	for deadline := time.Now().Add(time.Minute); ; {
		if fi, err := os.Stat(filepath.Join(out, "b", "cpu0.raw")); err == nil && fi.Size() > 0 {
			break // b records
		}
		if time.Now().After(deadline) {
			t.Fatalf("collect received nothing of b within a minute:\n%s", col.Output())
		}
		time.Sleep(50 * time.Millisecond)
	}
	agB.Signal(syscall.SIGKILL)
	agB.Wait()
	err := col.Wait()
	t.Logf("collect:\n%s", col.Output())
	var ee *exec.ExitError
	if !errors.As(err, &ee) || ee.ExitCode() != 1 {
		t.Errorf("collect: %v, want exit status 1 (a guest went away)", err)
	}
	text := col.Stdout()
	for _, want := range []string{"b: WARNING: the guest went away at ", "qemu exited", "start orders: sent within ",
		"a: wrote " + filepath.Join(out, "a", "trace.dat"), "b: wrote " + filepath.Join(out, "b", "trace.dat")} {
		if !strings.Contains(text, want) {
			t.Errorf("the summary lacks %q", want)
		}
	}
	if strings.Contains(text, "a: WARNING") {
		t.Errorf("guest a has warnings")
	}
	// A row per guest and CPU, with the agent's counters for a (it
	// confirmed its stop) and none for b.
	rows := map[string]int{}
	for _, line := range strings.Split(text, "\n") {
		f := strings.Fields(line)
		if len(f) >= 9 && (f[0] == "a" || f[0] == "b") && strings.HasPrefix(f[2], "cpu") {
			rows[f[0]]++
			if f[0] == "a" && (len(f) != 13 || f[5] != f[10]) {
				t.Errorf("guest a's row %q: want its events equal to the agent's read events", line)
			}
		}
	}
	if rows["a"] != cpus || rows["b"] != cpus {
		t.Errorf("summary rows per guest %v, want %d each", rows, cpus)
	}
	for _, g := range []string{"a", "b"} {
		if _, err := exec.Command(tc, "report", "-i", filepath.Join(out, g, "trace.dat")).Output(); err != nil {
			t.Errorf("trace-cmd report of %s's trace.dat: %v", g, err)
		}
		raws, _ := filepath.Glob(filepath.Join(out, g, "cpu*.raw"))
		for _, r := range raws {
			if fi, err := os.Stat(r); err != nil || fi.Size()%4096 != 0 {
				t.Errorf("%s: not whole pages (%v)", r, err)
			}
		}
		if len(raws) != cpus {
			t.Errorf("%s has %d raw files, want %d", g, len(raws), cpus)
		}
	}
}

// TestIntegrationCollectGoneBeforeStartReply: a guest that goes away
// around its start order ends as a guest gone mid-capture, well before the
// order's timeout: Run returns ErrGuestGone naming qemu's exit, and the
// capture has its metadata and a trace.dat that trace-cmd reads. The agent
// is killed right after it sent the metadata; "unanswered": qemu (a holder
// of the control FIFO here) takes the start order and exits a moment
// later; "refused": qemu is gone before the order, which gets EPIPE.
func TestIntegrationCollectGoneBeforeStartReply(t *testing.T) {
	tc := testutil.NeedProgram(t, "trace-cmd", "trace-cmd")
	for _, unanswered := range []bool{true, false} {
		t.Run(map[bool]string{true: "unanswered", false: "refused"}[unanswered], func(t *testing.T) {
			inst, _, dir := loopback(t, "vtrace-collect-gone-start")
			var qemu *os.File
			if unanswered {
				f, err := os.OpenFile(filepath.Join(dir, "agent-ctl-path.in"), os.O_RDWR, 0)
				if err != nil {
					t.Fatal(err)
				}
				qemu = f
				defer qemu.Close()
			}
			ag := testutil.StartAgent(t, testutil.AgentOptions{Tracefs: inst, Dir: dir})
			out := filepath.Join(t.TempDir(), "capture")
			go func() {
				for give := time.Now().Add(time.Minute); !testutil.IsDir(filepath.Join(out, "meta")) && time.Now().Before(give); {
					time.Sleep(time.Millisecond)
				}
				ag.Signal(syscall.SIGKILL)
				if qemu != nil {
					time.Sleep(time.Second) // the start order goes out meanwhile
					qemu.Close()
				}
			}()
			ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute) // a guard, not a measure
			defer cancel()
			sum, err := collect.Run(ctx, collect.Config{Dir: dir, Out: out, Start: true, OrderTimeout: time.Hour})
			ag.Wait()
			if ctx.Err() != nil {
				t.Fatal("collect did not end by itself")
			}
			var b strings.Builder
			sum.Write(&b)
			t.Logf("summary:\n%s", b.String())
			if !errors.Is(err, collect.ErrGuestGone) || sum.Gone == nil || !strings.Contains(sum.Gone.Why, "qemu exited") {
				t.Fatalf("Run: %v, gone %+v; want ErrGuestGone for qemu's exit", err, sum.Gone)
			}
			if sum.TraceDat == "" {
				t.Fatalf("no trace.dat; notes: %q", sum.Notes)
			}
			if rep, err := exec.Command(tc, "report", "-i", sum.TraceDat).CombinedOutput(); err != nil {
				t.Errorf("trace-cmd report: %v\n%s", err, rep)
			}
		})
	}
}
