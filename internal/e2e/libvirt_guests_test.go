package e2e

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/digitalocean/go-libvirt"

	"github.com/vtrace/vtrace/host/fifo"
	"github.com/vtrace/vtrace/host/virt"
	"github.com/vtrace/vtrace/internal/testutil"
)

// TestIntegrationLibvirtTwoDomains runs vtrace against two domains of a
// private libvirtd (1 vCPU each, booting the test guest with a workload):
// `vtrace host setup A B`, `host status A B`, a `host collect --start A B
// --host-events` whose captures are lossless per domain, with host.dat
// mapping each domain's vCPU to its qemu thread; then a second collect
// during which B is destroyed: B's capture ends by itself and says so, A's
// goes on to --duration, lossless; then `host teardown A B`.
func TestIntegrationLibvirtTwoDomains(t *testing.T) {
	logDuration(t)
	tc := testutil.NeedProgram(t, "trace-cmd", "trace-cmd")
	d := testutil.PrivateLibvirtd(t, false)
	w := newLibvirtWork(t)
	c, err := virt.Connect(d.URI)
	if err != nil {
		t.Fatal(err)
	}
	l := c.Libvirt()
	_, baseErr := os.Lstat(fifo.DefaultBase)
	names := []string{fmt.Sprintf("vtrace-e2e-a-%d", os.Getpid()), fmt.Sprintf("vtrace-e2e-b-%d", os.Getpid())}
	doms := map[string]libvirt.Domain{}
	consoles := map[string]string{}
	for _, n := range names {
		consoles[n] = filepath.Join(w.dir, n+".log")
		xml := strings.Replace(w.domainXML(n, 1, 300), w.console, consoles[n], 1)
		dom, err := l.DomainDefineXML(xml)
		if err != nil {
			t.Fatalf("define %s: %v", n, err)
		}
		doms[n] = dom
	}
	t.Cleanup(func() {
		for _, n := range names {
			if a, _ := l.DomainIsActive(doms[n]); a != 0 {
				l.DomainDestroy(doms[n])
			}
		}
		exec.Command(w.vtrace, append([]string{"host", "teardown", "-c", d.URI}, names...)...).Run()
		for _, n := range names {
			l.DomainUndefine(doms[n])
		}
		c.Close()
		if errors.Is(baseErr, fs.ErrNotExist) {
			os.Remove(fifo.DefaultBase)
		}
	})
	t.Logf("vtrace host setup:\n%s", vtrace(t, append([]string{"host", "setup", "-c", d.URI}, names...)...))
	for _, n := range names {
		if err := l.DomainCreate(doms[n]); err != nil {
			t.Fatalf("start %s: %v", n, err)
		}
	}
	for _, n := range names {
		if err := (libvirtWork{console: consoles[n]}).waitReady(); err != nil {
			b, _ := os.ReadFile(consoles[n])
			t.Fatalf("%s: %v\n%s", n, err, b)
		}
	}
	// The agents come up a while after the guests' init is ready, on
	// this loaded TCG host: the handshake waits for them.
	st := vtrace(t, append([]string{"host", "status", "--handshake-timeout", "30s"}, names...)...)
	for _, n := range names {
		if !strings.Contains(st, "== "+n+" ==") {
			t.Errorf("host status does not show %s:\n%s", n, st)
		}
	}
	if strings.Count(st, "state:    idle") != 2 {
		t.Errorf("host status: want two idle agents:\n%s", st)
	}

	lossless := func(text, n string) {
		t.Helper()
		rows := 0
		for _, line := range strings.Split(text, "\n") {
			f := strings.Fields(line)
			if len(f) == 13 && f[0] == n && f[2] == "cpu0.raw" {
				rows++
				if f[5] == "0" || f[5] != f[10] || f[11] != "0" || f[12] != "0" {
					t.Errorf("%s: %d events in the capture, the agent read %s (overrun %s, dropped %s)", n, len(f[5]), f[10], f[11], f[12])
				}
			}
		}
		if rows != 1 || strings.Contains(text, n+": WARNING") {
			t.Errorf("%s: %d rows in the summary, or warnings:\n%s", n, rows, text)
		}
	}

	out := filepath.Join(w.dir, "capture")
	stdout, stderr, err := testutil.RunVtrace(t, append([]string{"host", "collect", "-c", d.URI, "--start", "-o", out,
		"--events", "sched", "--host-events", "sched:sched_process_exec", "--duration", "4s", "--timeout", "30s", "--quiet"}, names...)...)
	t.Logf("vtrace host collect:\n%s%s", stdout, stderr)
	if err != nil {
		t.Fatalf("collect: %v", err)
	}
	for _, n := range names {
		lossless(stdout, n)
		// Each guest's clock is fitted to the host's: its trace.dat moves
		// onto the host's timeline.
		if !strings.Contains(stdout, n+": clock mono: guest − host ") {
			t.Errorf("%s: no clock fit in the summary", n)
		}
	}
	dump, err := exec.Command(tc, "dump", "--options", "-i", filepath.Join(out, "host.dat")).CombinedOutput()
	if err != nil {
		t.Fatalf("trace-cmd dump --options: %v\n%s", err, dump)
	}
	for _, n := range names {
		if !strings.Contains(string(dump), n) {
			t.Errorf("host.dat has no GUEST option for %s:\n%s", n, dump)
		}
	}
	args := []string{"report", "-i", filepath.Join(out, "host.dat")}
	for _, n := range names {
		args = append(args, "-i", filepath.Join(out, n+".dat"))
	}
	if b, err := exec.Command(tc, args...).CombinedOutput(); err != nil {
		t.Errorf("trace-cmd %s: %v\n%s", strings.Join(args, " "), err, b)
	}

	// B destroyed mid-capture.
	out2 := filepath.Join(w.dir, "capture2")
	col := runCollector(t, out2, append([]string{"-c", d.URI, "--start", "--events", "sched", "--duration", "6s", "--timeout", "30s"}, names...)...)
	for deadline := time.Now().Add(time.Minute); ; {
		if fi, err := os.Stat(filepath.Join(out2, names[1], "cpu0.raw")); err == nil && fi.Size() > 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("nothing of %s within a minute:\n%s%s", names[1], col.stdout.String(), col.stderr.String())
		}
		time.Sleep(50 * time.Millisecond)
	}
	if err := l.DomainDestroy(doms[names[1]]); err != nil {
		t.Fatal(err)
	}
	col.wait(2 * time.Minute)
	t.Logf("vtrace host collect (%s destroyed):\n%s%s", names[1], col.stdout.String(), col.stderr.String())
	var ee *exec.ExitError
	if !errors.As(col.err, &ee) || ee.ExitCode() != 1 {
		t.Errorf("collect: %v, want exit status 1", col.err)
	}
	if !strings.Contains(col.stdout.String(), names[1]+": WARNING: the guest went away at ") {
		t.Errorf("the summary does not say %s went away", names[1])
	}
	lossless(col.stdout.String(), names[0])
	if b, err := exec.Command(tc, "report", "-i", filepath.Join(out2, names[1]+".dat")).CombinedOutput(); err != nil {
		t.Errorf("trace-cmd report of %s's capture: %v\n%s", names[1], err, b)
	}

	vtrace(t, append([]string{"host", "teardown", "-c", d.URI}, names...)...)
	for _, n := range names {
		if _, err := os.Lstat(filepath.Join(fifo.DefaultBase, n)); !errors.Is(err, fs.ErrNotExist) {
			t.Errorf("teardown left %s's FIFO directory (%v)", n, err)
		}
	}
}
