package guest_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"runtime"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/vtrace/vtrace/guest"
	"github.com/vtrace/vtrace/internal/sys"
	"github.com/vtrace/vtrace/internal/testutil"
	"github.com/vtrace/vtrace/internal/textlog"
)

// markers writes n trace markers of size bytes into inst from cpu.
func markers(t *testing.T, inst string, cpu, n, size int) {
	t.Helper()
	done := make(chan error, 1)
	go func() {
		runtime.LockOSThread() // never unlocked: the thread dies with its affinity
		if err := sys.SetAffinity(cpu); err != nil {
			done <- err
			return
		}
		f, err := os.OpenFile(filepath.Join(inst, "trace_marker"), os.O_WRONLY, 0)
		if err != nil {
			done <- err
			return
		}
		defer f.Close()
		line := []byte(strings.Repeat("m", size-1) + "\n")
		for i := 0; i < n; i++ {
			if _, err := f.Write(line); err != nil {
				done <- err
				return
			}
		}
		done <- nil
	}()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
}

// TestIntegrationStopNamesTheCPU: when one CPU's host reader has stopped,
// the stop at exit gives up after the drain timeout, naming that CPU (and
// only it) and what it left behind: pages in the agent's pipe and events
// in the ring buffer, as the kernel counts them.
func TestIntegrationStopNamesTheCPU(t *testing.T) {
	inst := traceInstance(t, "vtrace-guest-stuckcpu", 1024)
	cpus := onlineCPUs(t)
	stuck := cpus[len(cpus)-1]
	dir := fifoDir(t, cpus)
	newHost(t, dir, inst, cpus[:len(cpus)-1]) // nobody reads the last CPU's port
	log := textlog.New(testWriter{t}, textlog.LevelDebug)
	fds := testutil.OpenFDs(t)
	a, err := guest.New(guest.Config{Tracefs: inst, PortsDir: dir, PipeSize: 64 << 10, StateDir: t.TempDir()}, log)
	if err != nil {
		t.Fatal(err)
	}
	if err := a.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	// Far more than the pipe and the FIFO hold: the agent waits for room.
	markers(t, inst, stuck, 1000, 512)
	tracing(t, inst, false)
	ctx, cancel := context.WithCancel(context.Background())
	ran := make(chan error, 1)
	go func() { ran <- a.Run(ctx, 10*time.Second, nil) }()
	cancel()
	err = <-ran
	a.Close()
	testutil.SameFDs(t, fds)
	if err == nil {
		t.Fatalf("Run: no error though the host never read cpu %d's port", stuck)
	}
	t.Logf("Run: %v", err)
	m := regexp.MustCompile(fmt.Sprintf(`cpu %d \(left behind: (\d+) pages of \d+ bytes in the agent's pipe, (\d+) events in the ring buffer\)`, stuck)).
		FindStringSubmatch(err.Error())
	if m == nil {
		t.Fatalf("Run: %v; want cpu %d named with what it left behind", err, stuck)
	}
	pages, _ := strconv.Atoi(m[1])
	events, _ := strconv.ParseInt(m[2], 10, 64)
	if pages == 0 {
		t.Errorf("cpu %d: no page left in a 64 KiB pipe that could not drain", stuck)
	}
	if ks := testutil.CPUStats(t, inst, stuck); events != ks["entries"] || events == 0 {
		t.Errorf("cpu %d: %d events said left in the ring buffer, the kernel has %d entries", stuck, events, ks["entries"])
	}
	for _, cpu := range cpus[:len(cpus)-1] {
		if strings.Contains(err.Error(), fmt.Sprintf("cpu %d ", cpu)) {
			t.Errorf("Run: %v; cpu %d, whose host read everything, is named", err, cpu)
		}
	}
}
