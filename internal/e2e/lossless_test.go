package e2e

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/vtrace/vtrace/internal/vmtest"
)

// TestIntegrationLossless: with tracing on in the guest, `vtrace host collect
// --start`, a workload on both CPUs and the stop, the events parsed on the
// host equal, per CPU, the events the guest kernel handed to its reader, and
// nothing was left, overwritten or flagged as missed. On each guest kernel.
func TestIntegrationLossless(t *testing.T) { onKernels(t, lossless) }

func lossless(t *testing.T, kernel string) {
	logDuration(t)
	g := vmtest.Boot(t, vmtest.Options{Kernel: kernel, CPUs: 2})
	out := filepath.Join(t.TempDir(), "capture")

	before := stats(t, g)
	c := startCollect(t, g, out, "--start")
	runWorkload(t, g, "spawn", 3, "")
	// Nothing recorded after this, so the stop can send everything.
	command(t, g, "trace", "off")
	c.stop(syscall.SIGTERM)
	after := stats(t, g)

	checkLossless(t, scanCaptures(t, g.CPUs, out), before, after)
}

// TestIntegrationREADMEWorkflow drives our agent exactly as the kernel's
// virtio-trace README drives the kernel's C agent: `cat trace-path-cpuN.out > FILE` in the
// background, `echo 1 > agent-ctl-path.in`, then `echo 0 > ...`. The files
// hold whole pages and every event the guest recorded. On each guest kernel.
func TestIntegrationREADMEWorkflow(t *testing.T) { onKernels(t, readmeWorkflow) }

func readmeWorkflow(t *testing.T, kernel string) {
	logDuration(t)
	g := vmtest.Boot(t, vmtest.Options{Kernel: kernel, CPUs: 2})
	work := t.TempDir()
	ctl := g.Path("agent-ctl-path") + ".in"

	before := stats(t, g)
	var cats []*exec.Cmd
	files := make([]string, g.CPUs)
	for cpu := range files {
		files[cpu] = filepath.Join(work, fmt.Sprintf("cpu%d.raw", cpu))
		cat := exec.Command("sh", "-c", fmt.Sprintf("cat %s.out > %s", g.Path(fmt.Sprintf("trace-path-cpu%d", cpu)), files[cpu]))
		cat.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL, Setpgid: true}
		if err := cat.Start(); err != nil {
			t.Fatal(err)
		}
		cats = append(cats, cat)
		t.Cleanup(func() {
			syscall.Kill(-cat.Process.Pid, syscall.SIGKILL)
			cat.Wait()
		})
	}
	sh(t, "echo 1 > "+ctl)
	runWorkload(t, g, "spawn", 3, "")
	command(t, g, "trace", "off")
	sh(t, "echo 0 > "+ctl)

	// The stop sends what is left; wait until the guest holds nothing
	// unread and the files stop growing, then end the cats.
	after := drained(t, g, 60*time.Second)
	waitQuiet(t, files, time.Second, 60*time.Second)
	for _, cat := range cats {
		syscall.Kill(-cat.Process.Pid, syscall.SIGTERM)
		cat.Wait()
	}
	checkLossless(t, scanCaptures(t, g.CPUs, work), before, after)
}

// sh runs a shell command line on the host.
func sh(t testing.TB, line string) {
	t.Helper()
	if out, err := exec.Command("sh", "-c", line).CombinedOutput(); err != nil {
		t.Fatalf("sh -c %q: %v\n%s", line, err, out)
	}
}

// waitQuiet waits until none of files has grown for quiet, failing after
// bound, and returns when they last grew.
func waitQuiet(t testing.TB, files []string, quiet, bound time.Duration) time.Time {
	t.Helper()
	sizes := func() (n []int64) {
		for _, f := range files {
			st, err := os.Stat(f)
			if err != nil {
				n = append(n, -1)
				continue
			}
			n = append(n, st.Size())
		}
		return n
	}
	deadline := time.Now().Add(bound)
	last, since := sizes(), time.Now()
	for time.Since(since) < quiet {
		if time.Now().After(deadline) {
			t.Fatalf("the files %v still grow after %s: %v", files, bound, last)
		}
		time.Sleep(20 * time.Millisecond)
		if now := sizes(); fmt.Sprint(now) != fmt.Sprint(last) {
			last, since = now, time.Now()
		}
	}
	return since
}
