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

	"github.com/vtrace/vtrace/internal/testutil"
	"github.com/vtrace/vtrace/proto/cpustream"
	"github.com/vtrace/vtrace/proto/ringbuf"
)

// TestIntegrationSIGTERM: the built binary, streaming, gets SIGTERM: it
// sends everything (last partial pages included) and exits 0.
func TestIntegrationSIGTERM(t *testing.T) {
	testutil.BuildVtrace(t) // before tracing: a build would fill the buffers
	inst, cpus, dir := loopback(t, "vtrace-guest-sigterm", 0)
	h := newHost(t, dir, inst, cpus)
	a := testutil.StartAgent(t, testutil.AgentOptions{Tracefs: inst, Dir: dir, Args: []string{"--verbose"}})

	h.send("1\n")
	workload(t, cpus, time.Second)
	tracing(t, inst, false)
	a.Stop(t)
	h.caughtUp(inst)
}

// TestIntegrationStdout: -o writes every CPU's pages to stdout as cpustream
// records; without a control port it streams at once.
func TestIntegrationStdout(t *testing.T) {
	bin := testutil.BuildVtrace(t)
	inst := traceInstance(t, "vtrace-guest-stdout", 0)
	cpus := onlineCPUs(t)
	l, err := ringbuf.LayoutFromTracefs(inst)
	if err != nil {
		t.Fatal(err)
	}

	var stderr bytes.Buffer
	cmd := exec.Command(bin, "guest", "agent", "-o", "--tracefs", inst, "--ports-dir", t.TempDir(), "-s", "64K")
	cmd.Stderr = &stderr
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	streams := map[uint32]*bytes.Buffer{}
	decoded := make(chan error, 1)
	go func() {
		r := cpustream.NewReader(out)
		for {
			hdr, page, err := r.Next()
			if errors.Is(err, io.EOF) {
				decoded <- nil
				return
			}
			if err != nil {
				decoded <- err
				io.Copy(io.Discard, out)
				return
			}
			if int(hdr.Length) != l.PageSize {
				t.Errorf("record of cpu %d: %d bytes, want a whole page (%d)", hdr.CPU, hdr.Length, l.PageSize)
			}
			if streams[hdr.CPU] == nil {
				streams[hdr.CPU] = &bytes.Buffer{}
			}
			streams[hdr.CPU].Write(page)
		}
	}()
	workload(t, cpus, time.Second)
	tracing(t, inst, false)
	cmd.Process.Signal(syscall.SIGTERM)
	if err := <-decoded; err != nil {
		t.Errorf("decode stdout: %v", err)
	}
	if err := cmd.Wait(); err != nil {
		t.Fatalf("agent after SIGTERM: %v\n%s", err, stderr.Bytes())
	}
	for _, cpu := range cpus {
		st, err := scan(l, streams[uint32(cpu)].Bytes())
		ks := testutil.CPUStats(t, inst, cpu)
		if err != nil || ks["entries"] != 0 || st.Events != ks["read events"] || st.MissedPages != 0 {
			t.Errorf("cpu %d: received %d events (%v, %d pages flag missed events); kernel: entries %d, read events %d, overrun %d",
				cpu, st.Events, err, st.MissedPages, ks["entries"], ks["read events"], ks["overrun"])
		}
	}
	if len(streams) != len(cpus) {
		t.Errorf("records for %d CPUs, want %d", len(streams), len(cpus))
	}
	if os.Getenv("VTRACE_SAVE_SAMPLE") != "" { // refreshes the cpustream fuzz corpus sample
		var b []byte
		for _, cpu := range cpus[:1] {
			b = append(cpustream.AppendHeader(b, cpustream.Header{CPU: uint32(cpu), Length: uint32(l.PageSize)}),
				streams[uint32(cpu)].Bytes()[:l.PageSize]...)
		}
		os.WriteFile(testutil.Repo(t)+"/proto/cpustream/testdata/agent-o.bin", b, 0o644)
	}
}

// TestMain removes, after the tests, the vtrace binary they build.
func TestMain(m *testing.M) { testutil.Main(m) }
