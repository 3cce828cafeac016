package guest_test

import (
	"bytes"
	"errors"
	"io"
	"os"
	"os/exec"
	"syscall"
	"testing"
	"time"

	"github.com/vtrace/vtrace/internal/sys"
	"github.com/vtrace/vtrace/internal/testutil"
	"github.com/vtrace/vtrace/proto/cpustream"
	"github.com/vtrace/vtrace/proto/ringbuf"
)

// TestIntegrationStdoutStalledReader: with -o, a reader of standard output
// that stops reading while events keep coming does not hang the agent. The
// pipe fills; a first SIGINT starts the stop, which cannot send what is
// left; a second one ends the agent while the reader is still stalled
// (with writes to stdout that blocked, it would wait for the reader for
// ever). What the reader then finds in the pipe is whole records.
func TestIntegrationStdoutStalledReader(t *testing.T) {
	bin := testutil.BuildVtrace(t)
	inst := traceInstance(t, "vtrace-guest-stdout-stall", 0)
	cpus := onlineCPUs(t)
	l, err := ringbuf.LayoutFromTracefs(inst)
	if err != nil {
		t.Fatal(err)
	}
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	var stderr bytes.Buffer
	cmd := exec.Command(bin, "guest", "agent", "-o", "--tracefs", inst, "--ports-dir", t.TempDir(), "--verbose")
	cmd.Stdout, cmd.Stderr = w, &stderr
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	w.Close()
	var waitErr error
	exited := make(chan struct{})
	go func() {
		waitErr = cmd.Wait()
		close(exited)
	}()
	t.Cleanup(func() {
		cmd.Process.Kill()
		<-exited
	})

	// Read a few records, then stall while the events keep coming.
	rd := cpustream.NewReader(r)
	for i := 0; i < 4; i++ {
		if _, _, err := rd.Next(); err != nil {
			t.Fatalf("record %d: %v\n%s", i, err, stderr.Bytes())
		}
	}
	workload(t, cpus, 3*time.Second) // the reader reads nothing meanwhile
	size, err := sys.PipeSize(int(r.Fd()))
	if err != nil {
		t.Fatal(err)
	}
	full, err := sys.PipeBuffered(int(r.Fd()))
	if err != nil {
		t.Fatal(err)
	}
	rec := cpustream.HeaderSize + l.PageSize
	t.Logf("pipe: %d of %d bytes waiting", full, size)
	if full < size/2-2*rec { // records take two pipe slots, a header's and a page's
		t.Fatalf("the agent wrote only %d bytes into a %d-byte pipe in 3 s of events: the test did not stall it", full, size)
	}

	cmd.Process.Signal(syscall.SIGINT) // the stop: cannot send what is left
	time.Sleep(500 * time.Millisecond)
	select {
	case <-exited:
		t.Fatalf("the agent ended at the first SIGINT (%v) with pages left and nobody reading", waitErr)
	default:
	}
	cmd.Process.Signal(syscall.SIGINT) // gives up
	select {
	case <-exited:
		t.Logf("the agent ended at the second SIGINT, reader still stalled: %v\n%s", waitErr, stderr.Bytes())
	case <-time.After(60 * time.Second):
		t.Fatalf("the agent still runs 60 s after a second SIGINT while its reader stalls\n%s", stderr.Bytes())
	}

	// Everything in the pipe now is whole records, and nothing else.
	n := 0
	for {
		hdr, _, err := rd.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatalf("after %d records: %v", n, err)
		}
		if int(hdr.Length) != l.PageSize {
			t.Errorf("record %d: %d bytes, want a page (%d)", n, hdr.Length, l.PageSize)
		}
		n++
	}
	t.Logf("%d whole records were waiting in the pipe", n)
}
