package guest_test

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/vtrace/vtrace/guest"
	"github.com/vtrace/vtrace/internal/sys"
	"github.com/vtrace/vtrace/internal/testutil"
	"github.com/vtrace/vtrace/proto/tracefs"
	"github.com/vtrace/vtrace/proto/wire"
)

// TestIntegrationSecondAgentRefused: while a vtrace agent streams a ring
// buffer (here another process), a second agent on the same buffer is
// refused, through any path to it, with the first one's pid; once the
// first has exited, the buffer is free again.
func TestIntegrationSecondAgentRefused(t *testing.T) {
	bin := testutil.BuildVtrace(t)
	inst := traceInstance(t, fmt.Sprintf("vtrace-guest-lock-%d", os.Getpid()), 0)
	first := exec.Command(bin, "guest", "agent", "-o", "--tracefs", inst, "--ports-dir", t.TempDir(), "--verbose")
	stderr, err := first.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := first.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { first.Process.Kill(); first.Wait() })
	ready := make(chan bool, 1)
	go func() {
		sc := bufio.NewScanner(stderr)
		for sc.Scan() {
			t.Log(sc.Text())
			if strings.Contains(sc.Text(), `msg="agent ready"`) {
				ready <- true
			}
		}
		close(ready)
	}()
	if !<-ready {
		t.Fatal("the first agent exited before it was ready")
	}

	// The same instance through another path: a symbolic link to it.
	other := filepath.Join(t.TempDir(), "link")
	if err := os.Symlink(inst, other); err != nil {
		t.Fatal(err)
	}
	dir := fifoDir(t, onlineCPUs(t))
	fds := testutil.OpenFDs(t)
	for _, path := range []string{inst, other} {
		_, err := guest.New(guest.Config{Tracefs: path, PortsDir: dir, StateDir: t.TempDir()}, nil)
		want := fmt.Sprintf("another vtrace agent streams this ring buffer (pid %d, vtrace)", first.Process.Pid)
		t.Logf("New on %s: %v", path, err)
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("New on %s while another agent streams it: %v; want an error saying %q", path, err, want)
		}
	}
	testutil.SameFDs(t, fds)

	first.Process.Kill()
	first.Wait() // closes the pipe of its stderr
	fds = testutil.OpenFDs(t)
	a, err := guest.New(guest.Config{Tracefs: inst, PortsDir: dir, StateDir: t.TempDir()}, nil)
	if err != nil {
		t.Fatalf("New once the other agent has exited: %v", err)
	}
	a.Close()
	testutil.SameFDs(t, fds)
}

// TestIntegrationInstanceOfAnotherAgent: an agent's own instance, which it
// records in, is not taken over by a second agent asked to record there
// (even one that finds the first one's marker, as agents sharing /run/vtrace
// do); once the first has stopped, the second records there.
func TestIntegrationInstanceOfAnotherAgent(t *testing.T) {
	root := testutil.Tracefs(t)
	state := t.TempDir()
	// Names of this process alone: a run of the tests beside another one
	// must not meet its instances.
	name := fmt.Sprintf("vtrace-guest-lockinst-%d", os.Getpid())
	s := wire.Settings{Events: []string{"sched:sched_switch"}, Instance: name}
	newAgent := func(base string) *guest.Agent {
		cpus := onlineCPUs(t)
		inst, dir := traceInstance(t, base, 0), fifoDir(t, cpus)
		// Streams read all along: a stop waits for room to send the
		// last pages, and a busy machine's sched_switch fills a FIFO.
		newHost(t, dir, inst, cpus)
		a, err := guest.New(guest.Config{Tracefs: inst, PortsDir: dir, StateDir: state}, nil)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { a.Close() })
		return a
	}
	first, second := newAgent(name+"-a"), newAgent(name+"-b")
	ctx := context.Background()
	if err := first.StartWith(ctx, s); err != nil {
		t.Fatalf("first agent: %v", err)
	}
	err := second.StartWith(ctx, s)
	if err == nil || !strings.Contains(err.Error(), fmt.Sprintf("another vtrace agent streams this ring buffer (pid %d", os.Getpid())) {
		t.Errorf("second agent in the first one's instance: %v; want it refused, naming the first", err)
	}
	if fi, err := os.Stat(filepath.Join(root, "instances", name)); err != nil || !fi.IsDir() {
		t.Fatal("the first agent's instance is gone")
	}
	// The first agent still streams it: stop it, then the second may.
	if err := first.Stop(ctx); err != nil {
		t.Fatal(err)
	}
	if err := second.StartWith(ctx, s); err != nil {
		t.Errorf("second agent once the first has stopped: %v", err)
	}
	if err := second.Stop(ctx); err != nil {
		t.Fatal(err)
	}
}

// TestIntegrationProtocolOtherReader: events another reader of the same
// ring buffer took (a plain read of trace_pipe_raw) are in the kernel's
// read counts that StopReply carries, not in what reached the host: the
// host can tell how many it lost to that reader.
func TestIntegrationProtocolOtherReader(t *testing.T) {
	inst := testutil.Instance(t, "vtrace-guest-otherreader") // no events: only the test's markers
	cpus := onlineCPUs(t)
	cpu := cpus[0]
	dir := fifoDir(t, cpus)
	h := newProtoHost(t, dir, inst, cpus)
	startAgent(t, guest.Config{Tracefs: inst, PortsDir: dir})
	hello(t, h)
	if e := start(t, h, wire.Settings{}); e != "" {
		t.Fatal(e)
	}
	// Less than a page: the agent splices whole pages only, so these wait
	// in the page the kernel is writing, and the other reader takes them.
	markers(t, inst, cpu, 50, 32)
	f, err := os.OpenFile(tracefs.PerCPU(inst, cpu, "trace_pipe_raw"), os.O_RDONLY|sys.ONonblock, 0)
	if err != nil {
		t.Fatal(err)
	}
	page := make([]byte, 64<<10)
	n, err := f.Read(page)
	f.Close()
	if err != nil || n == 0 {
		t.Fatalf("the other reader read %d bytes: %v", n, err)
	}
	markers(t, inst, cpu, 30, 32)
	r := stop(t, h)
	var read uint64
	for _, c := range r.CPUs {
		if int(c.CPU) == cpu {
			read = c.ReadEvents
		}
	}
	var got int64
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(10 * time.Millisecond) {
		st, err := h.received(cpu)
		if err != nil {
			t.Fatal(err)
		}
		if got = st.Events; got >= 30 || time.Now().After(deadline) {
			break
		}
	}
	if read != 80 || got != 30 {
		t.Errorf("cpu %d: StopReply read events %d, the host received %d; want 80 and 30 (50 taken by the other reader)", cpu, read, got)
	}
}
