package guest_test

import (
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/vtrace/vtrace/guest"
	"github.com/vtrace/vtrace/internal/testutil"
)

type testWriter struct{ t *testing.T }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Logf("%s", p)
	return len(p), nil
}

func tracing(t *testing.T, inst string, on bool) {
	v := "0"
	if on {
		v = "1"
	}
	write(t, filepath.Join(inst, "tracing_on"), v)
}

// TestIntegrationStreamMatchesStats: what the host receives after a stop is,
// per CPU, exactly what the kernel recorded, last partial pages included.
func TestIntegrationStreamMatchesStats(t *testing.T) {
	inst, cpus, dir := loopback(t, "vtrace-guest-stream", 0)
	h := newHost(t, dir, inst, cpus)
	startAgent(t, guest.Config{Tracefs: inst, PortsDir: dir})

	h.send("1\n")
	workload(t, cpus, time.Second)
	tracing(t, inst, false)
	h.send("0\n")
	got := h.caughtUp(inst)
	for _, cpu := range cpus {
		st := got[cpu]
		t.Logf("cpu %d: %d events in %d pages, %d bytes", cpu, st.Events, st.Pages, st.Bytes)
		if st.Events == 0 || st.MissedPages != 0 {
			t.Errorf("cpu %d: %d events, %d pages with missed events; want some events and no missed ones", cpu, st.Events, st.MissedPages)
		}
	}
}

// TestIntegrationControlInput: orders coalesced in one read, split across
// reads, with \r\n, and garbage around them.
func TestIntegrationControlInput(t *testing.T) {
	inst, cpus, dir := loopback(t, "vtrace-guest-control", 0)
	h := newHost(t, dir, inst, cpus)
	startAgent(t, guest.Config{Tracefs: inst, PortsDir: dir})

	// Recorded while idle, then "1\n0\n" in one write: start and stop,
	// which sends all of it.
	workload(t, cpus, 300*time.Millisecond)
	tracing(t, inst, false)
	h.send("hello\n\x00\xff\n" + string(make([]byte, 5000)) + "\n1\n0\n")
	h.caughtUp(inst)

	// Split across writes, with \r\n and garbage in between.
	tracing(t, inst, true)
	h.send("1")
	time.Sleep(50 * time.Millisecond) // let the agent read "1" on its own
	h.send("\r")
	h.send("\nbogus\r\n1\n") // "1" while running: nothing happens
	workload(t, cpus, 300*time.Millisecond)
	tracing(t, inst, false)
	h.send("0\r")
	h.send("\n0\n") // "0" while idle: nothing happens
	h.caughtUp(inst)
}

// TestIntegrationCycles: start/stop cycles with events recorded while idle
// too; nothing lost, nothing twice, time never backwards per CPU.
func TestIntegrationCycles(t *testing.T) {
	inst, cpus, dir := loopback(t, "vtrace-guest-cycles", 0)
	h := newHost(t, dir, inst, cpus)
	startAgent(t, guest.Config{Tracefs: inst, PortsDir: dir})

	for i := 0; i < 3; i++ {
		tracing(t, inst, true)
		workload(t, cpus, 200*time.Millisecond) // idle: stays in the ring buffer
		h.send("1\n")
		workload(t, cpus, 300*time.Millisecond)
		tracing(t, inst, false)
		h.send("0\n")
		got := h.caughtUp(inst)
		for _, cpu := range cpus {
			t.Logf("cycle %d cpu %d: %d events so far", i, cpu, got[cpu].Events)
		}
	}
}

// TestIntegrationSlowReader: a host that stops reading for seconds neither
// kills the agent nor stalls tracing; the ring buffer overwrites, the pages
// say so, and everything not overwritten arrives.
func TestIntegrationSlowReader(t *testing.T) {
	inst, cpus, dir := loopback(t, "vtrace-guest-slow", 16) // 4 pages per CPU
	h := newHost(t, dir, inst, cpus)
	startAgent(t, guest.Config{Tracefs: inst, PortsDir: dir, PipeSize: 64 << 10})

	h.send("1\n")
	h.pause()
	workload(t, cpus, 3*time.Second)
	h.resume()
	workload(t, cpus, 300*time.Millisecond)
	tracing(t, inst, false)
	h.send("0\n")
	h.caughtUp(inst)
	overran := false
	for _, cpu := range cpus {
		ks := testutil.CPUStats(t, inst, cpu)
		t.Logf("cpu %d: overrun %d, read events %d", cpu, ks["overrun"], ks["read events"])
		overran = overran || ks["overrun"] > 0
	}
	if !overran {
		t.Error("no CPU overran its 16 KiB ring buffer while the host did not read for 3 s")
	}
}

// TestIntegrationErrors: what is missing is named, with how to get it,
// and a New that fails leaves no fd open.
func TestIntegrationErrors(t *testing.T) {
	inst := traceInstance(t, "vtrace-guest-errors", 0)
	dir := fifoDir(t, []int{0})
	fds := testutil.OpenFDs(t)
	_, err := guest.New(guest.Config{Tracefs: inst, PortsDir: t.TempDir()}, nil)
	if err == nil || !strings.Contains(err.Error(), "agent-ctl-path") {
		t.Errorf("New without ports: %v, want an error naming agent-ctl-path", err)
	}
	_, err = guest.New(guest.Config{Tracefs: inst, PortsDir: dir, CPUs: []int{0, 1}}, nil)
	if err == nil || !strings.Contains(err.Error(), "trace-path-cpu1") {
		t.Errorf("New without the cpu1 port: %v, want an error naming trace-path-cpu1", err)
	}
	_, err = guest.New(guest.Config{Tracefs: inst, PortsDir: dir, CPUs: []int{0, 4000}}, nil)
	if err == nil || !strings.Contains(err.Error(), "cpu4000/trace_pipe_raw") || strings.Count(err.Error(), "open") != 1 {
		t.Errorf("New for cpu 4000: %v, want an error naming its trace_pipe_raw and the operation once", err)
	}
	testutil.SameFDs(t, fds)
}
