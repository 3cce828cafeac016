package e2e

import (
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/vtrace/vtrace/internal/testutil"
	"github.com/vtrace/vtrace/internal/vmtest"
)

// TestIntegrationHostSettings: the host chooses what a real guest records,
// in one boot.
//
//   - Wrong settings (an unknown event through `collect --start`, a bad
//     filter, an impossible buffer size and a sub-buffer size the kernel
//     cannot have through `host start`) fail with
//     exit status 1 and a message naming the culprit; the guest's tracefs is
//     as it was (no instance, same events, clock, buffer, filters) and
//     collect leaves no capture behind.
//   - Two captures in a row with different settings: sched:sched_switch
//     with the mono clock, then the irq system with x86-tsc in an instance
//     named by the host. While each records, the guest has that instance
//     with those events and that clock; the capture holds those events only
//     (trace-cmd and `vtrace host stats` agree), all of them (the agent's
//     final stats: entries 0, read == what the host parsed), its trace.dat
//     names the clock; afterwards the instance is gone, the guest's own
//     tracing is as it was and its top-level buffer was not consumed.
//   - The agent stopped by SIGTERM while it records removes its instance.
//
// On each guest kernel.
func TestIntegrationHostSettings(t *testing.T) { onKernels(t, hostSettings) }

func hostSettings(t *testing.T, kernel string) {
	logDuration(t)
	testutil.NeedProgram(t, "trace-cmd", "trace-cmd")
	g := vmtest.Boot(t, vmtest.Options{Kernel: kernel, CPUs: 2})
	work := t.TempDir()
	clean := tracefsState(t, g)
	t.Logf("the guest's tracefs before any recording:\n%s", clean)
	if inst := instances(t, g); len(inst) != 0 {
		t.Fatalf("the guest has instances before any recording: %v", inst)
	}
	unchanged := func(when string) {
		t.Helper()
		if now := tracefsState(t, g); now != clean {
			t.Errorf("the guest's tracefs %s:\n%s\nwas:\n%s", when, now, clean)
		}
	}

	t.Run("wrong", func(t *testing.T) {
		out := filepath.Join(work, "wrong")
		for _, c := range []struct {
			args []string
			want string // in the message
		}{
			{[]string{"host", "collect", "--dir", g.Dir, "-o", out, "--quiet", "--start", "--events", "sched:no_such_event"}, "no_such_event"},
			{[]string{"host", "start", "--dir", g.Dir, "--events", "sched:sched_switch", "--filter", "sched:sched_switch=no_such_field == 1"}, "filter"},
			{[]string{"host", "start", "--dir", g.Dir, "--events", "sched:sched_switch", "--buffer-size", "64G"}, "buffer size"},
			subbufRefused(g, kernel),
		} {
			msg := vtraceFails(t, c.args...)
			t.Logf("vtrace %s:\n%s", strings.Join(c.args[:2], " "), msg)
			if !strings.Contains(msg, c.want) {
				t.Errorf("vtrace %s: the message does not name %q:\n%s", strings.Join(c.args, " "), c.want, msg)
			}
			unchanged("after vtrace " + strings.Join(c.args, " "))
		}
		for _, name := range []string{"cpu0.raw", "cpu1.raw", "trace.dat"} {
			if _, err := os.Stat(filepath.Join(out, name)); !errors.Is(err, os.ErrNotExist) {
				t.Errorf("a refused collect left %s behind (%v)", name, err)
			}
		}
		if s := command(t, g, "agent-status"); !strings.HasPrefix(s, "running") {
			t.Fatalf("agent-status after refused settings: %q, want running", s)
		}
	})

	for _, c := range []struct {
		name, instance, events, clock string
		system                        string // every recorded event's system
	}{
		{"sched_switch", "", "sched:sched_switch", "mono", "sched"},
		{"irq", "vt2", "irq", "x86-tsc", "irq"},
	} {
		t.Run(c.name, func(t *testing.T) {
			out := filepath.Join(work, c.name)
			args := []string{"--start", "--events", c.events, "--clock", c.clock}
			want := "vtrace" // the agent's default instance
			if c.instance != "" {
				args = append(args, "--instance", c.instance)
				want = c.instance
			}
			top := stats(t, g)
			col := startCollect(t, g, out, args...)
			if inst := instances(t, g); !slices.Equal(inst, []string{want}) {
				t.Errorf("the guest's instances while recording: %v, want [%s]", inst, want)
			}
			dir := "/sys/kernel/tracing/instances/" + want
			if clock := command(t, g, "sh", "cat "+dir+"/trace_clock"); !strings.Contains(clock, "["+c.clock+"]") {
				t.Errorf("the instance's trace_clock: %q, want [%s]", clock, c.clock)
			}
			set := strings.Fields(command(t, g, "sh", "cat "+dir+"/set_event"))
			for _, e := range set {
				if c.events != c.system && e != c.events || !strings.HasPrefix(e, c.system+":") {
					t.Errorf("the instance's set_event has %s; asked for %s", e, c.events)
				}
			}
			if len(set) == 0 {
				t.Errorf("the instance's set_event is empty; asked for %s", c.events)
			}
			runWorkload(t, g, "spawn", 2, "")
			col.stop(syscall.SIGTERM)

			if inst := instances(t, g); len(inst) != 0 {
				t.Errorf("the guest's instances after the capture: %v, want none", inst)
			}
			unchanged("after the capture")
			after := stats(t, g)
			for cpu := range after {
				if after[cpu].ReadEvents != top[cpu].ReadEvents {
					t.Errorf("cpu %d: the guest's top-level buffer was read during the capture: read events %d -> %d",
						cpu, top[cpu].ReadEvents, after[cpu].ReadEvents)
				}
			}

			got := scanCaptures(t, g.CPUs, out)
			agent := agentStats(t, out, g.CPUs)
			rows, lost := col.summary(g.CPUs)
			for cpu, h := range got {
				a := agent[cpu]
				if h.Events == 0 {
					t.Errorf("cpu %d: no events", cpu)
				}
				if uint64(h.Events) != a.ReadEvents || rows[cpu].Read != a.ReadEvents || a.Entries != 0 {
					t.Errorf("cpu %d: the host parsed %d events, the agent read %d (summary %d), %d left in the buffer",
						cpu, h.Events, a.ReadEvents, rows[cpu].Read, a.Entries)
				}
				if a.Overrun+a.CommitOverrun+a.DroppedEvents != 0 || h.MissedPages != 0 {
					t.Errorf("cpu %d: events lost (overrun %d, commit overrun %d, dropped %d; %d pages flagged)",
						cpu, a.Overrun, a.CommitOverrun, a.DroppedEvents, h.MissedPages)
				}
			}
			if lost != 0 {
				t.Errorf("collect says %d events lost", lost)
			}
			r := checkReport(t, out, got)
			for name := range r.PerEvent {
				if _, err := os.Stat(filepath.Join(out, "meta", "events", c.system, name, "format")); err != nil {
					t.Errorf("trace-cmd report shows %s events, not of the %s system (asked for %s)", name, c.system, c.events)
				}
				if c.events == "sched:sched_switch" && name != "sched_switch" {
					t.Errorf("trace-cmd report shows %s events; asked for sched_switch only", name)
				}
			}
			if c.system == "sched" {
				checkConsecutive(t, r)
			}
			if clock := run(t, "trace-cmd", "dump", "--clock", "-i", filepath.Join(out, "trace.dat")); !strings.Contains(clock, "["+c.clock+"]") {
				t.Errorf("trace-cmd dump --clock: %q, want [%s]", clock, c.clock)
			}
			// A counter clock's timestamps are counts, the others seconds.
			t.Logf("trace-cmd's first timestamps: %v", r.Stamps)
			for _, s := range r.Stamps {
				if strings.Contains(s, ".") == (c.clock == "x86-tsc") {
					t.Errorf("trace-cmd prints timestamp %q of clock %s", s, c.clock)
				}
			}
		})
	}

	t.Run("agent-exit", func(t *testing.T) {
		col := startCollect(t, g, filepath.Join(work, "exit"))
		vtrace(t, "host", "start", "--dir", g.Dir, "--events", "sched:sched_switch", "--instance", "vt3")
		if inst := instances(t, g); !slices.Equal(inst, []string{"vt3"}) {
			t.Errorf("the guest's instances while recording: %v, want [vt3]", inst)
		}
		command(t, g, "kill-agent", "TERM")
		if _, err := g.WaitFor(`^VTRACE-AGENT-EXIT pid=\d+ rc=\d+`, 60*time.Second); err != nil {
			t.Fatal(err)
		}
		if inst := instances(t, g); len(inst) != 0 {
			t.Errorf("the guest's instances after the agent exited: %v, want none", inst)
		}
		unchanged("after the agent exited")
		col.stop(syscall.SIGTERM)
	})
}

// subbufRefused is a sub-buffer size the guest kernel cannot take, and
// what the error says: on 6.1 any (no buffer_subbuf_size_kb: the kernel
// that has it is named), on 6.12 one over its 128 pages.
func subbufRefused(g *vmtest.Guest, kernel string) (c struct {
	args []string
	want string
}) {
	c.args = []string{"host", "start", "--dir", g.Dir, "--events", "sched:sched_switch", "--subbuf-size", "16K"}
	c.want = "it came with Linux 6.8"
	if kernel != "6.1" {
		c.args[len(c.args)-1] = "1M"
		c.want = "from 4 KiB to 512 KiB"
	}
	return c
}

// tracefsState describes what of the guest's top-level tracing the agent
// must leave alone: instances, enabled events, clock, buffer, filter.
func tracefsState(t testing.TB, g *vmtest.Guest) string {
	t.Helper()
	return command(t, g, "sh", `cd /sys/kernel/tracing && `+
		`for f in trace_clock buffer_size_kb tracing_on buffer_percent current_tracer events/sched/sched_switch/filter; do echo "$f: $(cat $f)"; done; `+
		`echo "instances: $(ls instances)"; echo "set_event: $(cat set_event | tr '\n' ' ')"`)
}

// vtraceFails runs a vtrace command that must fail with exit status 1 (not
// a usage error) within a minute, and returns its output.
func vtraceFails(t testing.TB, args ...string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, testutil.BuildVtrace(t), args...).CombinedOutput()
	var ee *exec.ExitError
	if !errors.As(err, &ee) || ee.ExitCode() != 1 {
		t.Fatalf("vtrace %s: %v, want exit status 1\n%s", strings.Join(args, " "), err, out)
	}
	return string(out)
}
