package guest_test

import (
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/vtrace/vtrace/guest"
	"github.com/vtrace/vtrace/internal/testutil"
	"github.com/vtrace/vtrace/proto/wire"
)

// The machine's own CPUs must not go offline: these tests give the agent a
// list of online CPUs of their own (SetCPUFilesForTest), in which the
// machine's last CPU is offline at first. A real CPU coming online in a
// guest is internal/e2e's TestIntegrationCPUComesOnline.

// fakeCPUs makes the online and possible lists the agent reads and returns
// a function that rewrites the online one.
func fakeCPUs(t *testing.T, online, possible string) func(string) {
	t.Helper()
	dir := t.TempDir()
	on, pos := filepath.Join(dir, "online"), filepath.Join(dir, "possible")
	write(t, on, online+"\n")
	write(t, pos, possible+"\n")
	guest.SetCPUFilesForTest(t, on, pos)
	return func(s string) { write(t, on, s+"\n") }
}

func wireCPUs(cpus []int) []uint32 {
	var out []uint32
	for _, c := range cpus {
		out = append(out, uint32(c))
	}
	return out
}

func statsCPUs(stats []wire.CPUStats) []uint32 {
	var out []uint32
	for _, s := range stats {
		out = append(out, s.CPU)
	}
	return out
}

// lateCPU makes the last of the test's CPUs one the agent is told is
// offline: it returns all the CPUs, those online at first (early), the
// late one, and the fakeCPUs setter of the online list.
func lateCPU(t *testing.T) (cpus, early []int, late int, setOnline func(string)) {
	t.Helper()
	cpus = onlineCPUs(t)
	testutil.Need(t, len(cpus) >= 2, "a second CPU (one the agent is told is offline)", "run the tests on a machine with 2 CPUs or more")
	late = cpus[len(cpus)-1]
	early = cpus[:len(cpus)-1]
	return cpus, early, late, fakeCPUs(t, guest.FormatCPUList(early), guest.FormatCPUList(cpus))
}

// TestIntegrationCPUComesOnline: a CPU offline when the agent starts is
// said to be offline (handshake, StartReply); once it is online, Status
// and StopReply say it came online during the recording, and the next
// Start streams it: everything recorded on it arrives. When it goes
// offline again, the next Start lets it go.
func TestIntegrationCPUComesOnline(t *testing.T) {
	cpus, early, late, setOnline := lateCPU(t)
	inst := traceInstance(t, "vtrace-guest-cpuonline", 0)
	dir := fifoDir(t, cpus)
	h := newProtoHost(t, dir, inst, cpus)
	startAgent(t, guest.Config{Tracefs: inst, PortsDir: dir})

	offline := []wire.UnstreamedCPU{{CPU: uint32(late), Reason: "offline"}}
	lateOnline := []wire.UnstreamedCPU{{CPU: uint32(late), Reason: "came online during the recording: streamed from the next start"}}
	r := hello(t, h)
	if diff := cmp.Diff(wireCPUs(early), r.CPUs); diff != "" || !cmp.Equal(offline, r.Unstreamed) {
		t.Errorf("HelloReply: CPUs %v (-want +got: %s), unstreamed %+v; want cpu %d offline", r.CPUs, diff, r.Unstreamed, late)
	}
	startReply := func() *wire.StartReply {
		t.Helper()
		id := h.call(&wire.Start{})
		sr, ok := h.next().(*wire.StartReply)
		if !ok || sr.ID != id || sr.Error != "" {
			t.Fatalf("start: %+v", sr)
		}
		return sr
	}
	if sr := startReply(); !cmp.Equal(wireCPUs(early), sr.CPUs) || !cmp.Equal(offline, sr.Unstreamed) {
		t.Errorf("StartReply: CPUs %v, unstreamed %+v; want %v and cpu %d offline", sr.CPUs, sr.Unstreamed, early, late)
	}
	setOnline(guest.FormatCPUList(cpus))
	workload(t, cpus, 300*time.Millisecond) // on the late CPU too: it stays in its buffer
	h.call(&wire.StatusRequest{})
	if st, ok := h.next().(*wire.Status); !ok || !cmp.Equal(lateOnline, st.Unstreamed) || !cmp.Equal(wireCPUs(early), statsCPUs(st.CPUs)) {
		t.Errorf("Status while recording: %+v; want stats of %v and cpu %d come online", st, early, late)
	}
	if sr := stop(t, h); !cmp.Equal(lateOnline, sr.Unstreamed) || !cmp.Equal(wireCPUs(early), statsCPUs(sr.CPUs)) {
		t.Errorf("StopReply: stats of %v, unstreamed %+v; want stats of %v and cpu %d come online", statsCPUs(sr.CPUs), sr.Unstreamed, early, late)
	}

	if sr := startReply(); !cmp.Equal(wireCPUs(cpus), sr.CPUs) || len(sr.Unstreamed) != 0 {
		t.Errorf("StartReply once cpu %d is online: CPUs %v, unstreamed %+v; want all of %v", late, sr.CPUs, sr.Unstreamed, cpus)
	}
	workload(t, cpus, 300*time.Millisecond)
	tracing(t, inst, false)
	if sr := stop(t, h); !cmp.Equal(wireCPUs(cpus), statsCPUs(sr.CPUs)) || len(sr.Unstreamed) != 0 {
		t.Errorf("StopReply: stats of %v, unstreamed %+v; want stats of all of %v", statsCPUs(sr.CPUs), sr.Unstreamed, cpus)
	}
	// Everything the late CPU recorded, before and after the start that
	// took it in, arrived.
	got := h.caughtUp(inst)
	if got[late].Events == 0 {
		t.Errorf("cpu %d: no events arrived", late)
	}

	setOnline(guest.FormatCPUList(early))
	if sr := startReply(); !cmp.Equal(wireCPUs(early), sr.CPUs) || !cmp.Equal(offline, sr.Unstreamed) {
		t.Errorf("StartReply once cpu %d is offline again: CPUs %v, unstreamed %+v; want %v and cpu %d offline", late, sr.CPUs, sr.Unstreamed, early, late)
	}
	stop(t, h)
}

// TestIntegrationCPUWithoutPort: a CPU that comes online with no data port
// for it is not streamed, and the replies say why; the others stream on.
func TestIntegrationCPUWithoutPort(t *testing.T) {
	cpus, early, late, setOnline := lateCPU(t)
	inst := traceInstance(t, "vtrace-guest-cpunoport", 0)
	dir := fifoDir(t, early) // no trace-path port for the late CPU
	h := newProtoHost(t, dir, inst, early)
	startAgent(t, guest.Config{Tracefs: inst, PortsDir: dir})
	hello(t, h)

	setOnline(guest.FormatCPUList(cpus))
	id := h.call(&wire.Start{})
	sr, ok := h.next().(*wire.StartReply)
	if !ok || sr.ID != id || sr.Error != "" {
		t.Fatalf("start: %+v", sr)
	}
	if !cmp.Equal(wireCPUs(early), sr.CPUs) || len(sr.Unstreamed) != 1 || sr.Unstreamed[0].CPU != uint32(late) ||
		!strings.Contains(sr.Unstreamed[0].Reason, "find port trace-path-cpu") {
		t.Errorf("StartReply: CPUs %v, unstreamed %+v; want %v, and cpu %d without a port", sr.CPUs, sr.Unstreamed, early, late)
	}
	workload(t, cpus, 300*time.Millisecond)
	tracing(t, inst, false)
	stop(t, h)
	h.caughtUp(inst)
}
