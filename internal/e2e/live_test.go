package e2e

import (
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/vtrace/vtrace/host/domxml"
	"github.com/vtrace/vtrace/host/fifo"
	"github.com/vtrace/vtrace/host/virt"
	"github.com/vtrace/vtrace/internal/testutil"
	"github.com/vtrace/vtrace/proto/channel"
)

// waitConsole waits (bound at most) for a line of the console log that
// matches re after offset from, and returns the offset after it.
func (w libvirtWork) waitConsole(t *testing.T, from int, re string, bound time.Duration) int {
	t.Helper()
	rx := regexp.MustCompile(re)
	deadline := time.Now().Add(bound)
	for time.Now().Before(deadline) {
		b, _ := os.ReadFile(w.console)
		if from < len(b) {
			if loc := rx.FindIndex(b[from:]); loc != nil {
				return from + loc[1]
			}
		}
		time.Sleep(100 * time.Millisecond)
	}
	b, _ := os.ReadFile(w.console)
	t.Fatalf("no %q on the console within %v; console:\n%s", re, bound, b)
	return 0
}

// TestIntegrationLibvirtLive traces a domain that booted without trace
// channels, its agent already running and waiting for its ports, with no
// restart: `vtrace host setup --live` hot-plugs unix-socket channels, the
// agent picks the ports up, a user in the --group collects losslessly
// (the agent's counts from the guest kernel's per-CPU stats match the
// capture, and trace-cmd reads its trace.dat), `teardown --live` unplugs
// them and the agent waits again; the persistent XML stays as it was.
// Then, while no collector is connected, a recording waits in the guest
// (nothing is sent) and a collector that connects later gets every page.
// Last, `setup --live --config` changes the persistent XML too, the agent
// answers over the new sockets, and `teardown --live --config` takes the
// channels from both.
func TestIntegrationLibvirtLive(t *testing.T) {
	logDuration(t)
	d := testutil.PrivateLibvirtd(t, false)
	w := newLibvirtWork(t)
	testutil.NeedProgram(t, "trace-cmd", "trace-cmd")
	const cpus = 2
	name := fmt.Sprintf("vtrace-live-%d", os.Getpid())
	dir, err := fifo.DomainDir("", name)
	if err != nil {
		t.Fatal(err)
	}
	_, baseErr := os.Lstat(fifo.DefaultBase)
	c, err := virt.Connect(d.URI)
	if err != nil {
		t.Fatal(err)
	}
	l := c.Libvirt()
	// A virtio-serial controller, as most domains have (libvirt cannot
	// hot-plug one), and no channel.
	x := strings.Replace(w.domainXML(name, cpus, 600), "<devices>", "<devices>\n    <controller type='virtio-serial'/>", 1)
	dom, err := l.DomainDefineXML(x)
	if err != nil {
		t.Fatalf("define %s: %v", name, err)
	}
	t.Cleanup(func() {
		if a, _ := l.DomainIsActive(dom); a != 0 {
			l.DomainDestroy(dom)
		}
		l.DomainUndefine(dom)
		c.Close()
		os.RemoveAll(dir)
		if errors.Is(baseErr, fs.ErrNotExist) {
			os.Remove(fifo.DefaultBase)
		}
	})
	inactive := func() []byte {
		b, err := c.InactiveXML(name)
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	persistent := inactive()

	if err := os.Truncate(w.console, 0); err != nil && !errors.Is(err, fs.ErrNotExist) {
		t.Fatal(err)
	}
	if err := l.DomainCreate(dom); err != nil {
		t.Fatalf("start %s: %v", name, err)
	}
	if err := w.waitReady(); err != nil {
		b, _ := os.ReadFile(w.console)
		t.Fatalf("%v; console:\n%s", err, b)
	}
	id := func() int32 {
		dm, err := l.DomainLookupByName(name)
		if err != nil {
			t.Fatal(err)
		}
		return dm.ID
	}
	bootID := id()
	at := w.waitConsole(t, 0, `msg="waiting for ports.*missing="agent-ctl-path trace-path-cpu0 trace-path-cpu1"`, 60*time.Second)

	out := vtrace(t, "host", "setup", "-c", d.URI, "--live", "--group", fmt.Sprint(collectGroup), name)
	t.Logf("vtrace host setup --live:\n%s", out)
	if strings.Contains(out, "warning:") {
		t.Errorf("setup --live warns:\n%s", out)
	}
	for _, n := range channel.Names(cpus) {
		st, err := os.Lstat(filepath.Join(dir, n))
		if err != nil || st.Mode().Type() != fs.ModeSocket {
			t.Fatalf("%s/%s after setup --live: %v, %v; want a socket", dir, n, st, err)
		}
	}
	if fifo.Detect(dir) != fifo.Sockets {
		t.Errorf("Detect(%s) after setup --live: not sockets", dir)
	}
	if got := inactive(); !bytes.Equal(got, persistent) {
		t.Errorf("setup --live without --config changed the persistent XML:\n%s", domxml.Diff("before", "after", persistent, got))
	}
	at = w.waitConsole(t, at, `msg="ports found"`, 60*time.Second)

	capture := filepath.Join(w.dir, "capture")
	if err := os.Mkdir(capture, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Chown(capture, collectUser, collectUser); err != nil {
		t.Fatal(err)
	}
	col := collectAs(t, w.vtrace, "host", "collect", "--start", name, "-o", capture, "--duration", "4s", "--quiet")
	t.Logf("vtrace host collect over unix sockets as uid %d in group %d:\n%s", collectUser, collectGroup, col.stdout.String())
	got := scanCaptures(t, cpus, capture)
	rows, lost := col.summary(cpus)
	for cpu := range got {
		if got[cpu].Events == 0 || rows[cpu].Read != uint64(got[cpu].Events) || rows[cpu].Overrun+rows[cpu].Dropped != 0 ||
			got[cpu].MissedPages != 0 {
			t.Errorf("cpu %d: %d events in the capture, the guest kernel read %d (overrun %d, dropped %d), %d pages flagged with missed events",
				cpu, got[cpu].Events, rows[cpu].Read, rows[cpu].Overrun, rows[cpu].Dropped, got[cpu].MissedPages)
		}
	}
	if lost != 0 || strings.Contains(col.stdout.String(), "WARNING") {
		t.Errorf("collect warns of lost events:\n%s", col.stdout.String())
	}
	checkReport(t, capture, got)

	// While no collector is connected the guest sends nothing (its port's
	// host end is closed), and what waits reaches a collector that
	// connects later: every page the agent counts as sent is captured.
	vtrace(t, "host", "start", name)
	for {
		st := cpuCounters(t, vtrace(t, "host", "status", name))
		waiting, sent := uint64(0), uint64(0)
		for _, c := range st {
			waiting += c[0] + c[1] // entries in the ring buffer, events read into the agent's pipe
			sent += c[5]
		}
		if sent != 0 {
			t.Fatalf("the agent sent %d bytes while no collector was connected:\n%v", sent, st)
		}
		if waiting > 0 {
			break
		}
		time.Sleep(200 * time.Millisecond)
	}
	late := filepath.Join(w.dir, "capture-late")
	lateCol := exec.Command(w.vtrace, "host", "collect", name, "-o", late, "--duration", "6s", "--quiet")
	var lateOut bytes.Buffer
	lateCol.Stdout, lateCol.Stderr = &lateOut, &lateOut
	if err := lateCol.Start(); err != nil {
		t.Fatal(err)
	}
	stop := vtrace(t, "host", "stop", name)
	err = lateCol.Wait()
	t.Logf("vtrace host stop:\n%s\nvtrace host collect (no --start):\n%s", stop, lateOut.String())
	if err != nil {
		t.Fatalf("vtrace host collect: %v", err)
	}
	final := cpuCounters(t, stop)
	lateGot := scanCaptures(t, cpus, late)
	for cpu := range lateGot {
		if sent, read := final[cpu][6], final[cpu][1]; lateGot[cpu].Pages == 0 || uint64(lateGot[cpu].Pages) != sent ||
			uint64(lateGot[cpu].Events) != read {
			t.Errorf("cpu %d: the agent read %d events and sent %d pages; %d events in %d pages arrived",
				cpu, read, sent, lateGot[cpu].Events, lateGot[cpu].Pages)
		}
	}

	out = vtrace(t, "host", "teardown", "-c", d.URI, "--live", name)
	t.Logf("vtrace host teardown --live:\n%s", out)
	if _, err := os.Lstat(dir); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("teardown --live left %s (%v)", dir, err)
	}
	live, err := l.DomainGetXMLDesc(dom, 0)
	if err != nil {
		t.Fatal(err)
	}
	if info, _ := domxml.Inspect([]byte(live)); len(info.Channels) != 0 {
		t.Errorf("the running domain keeps channels after teardown --live: %+v", info.Channels)
	}
	if got := inactive(); !bytes.Equal(got, persistent) {
		t.Errorf("teardown --live without --config changed the persistent XML:\n%s", domxml.Diff("before", "after", persistent, got))
	}
	at = w.waitConsole(t, at, `msg="ports went away`, 60*time.Second)
	at = w.waitConsole(t, at, `msg="waiting for ports`, 60*time.Second)

	// --config: the persistent XML follows; the agent answers again.
	out = vtrace(t, "host", "setup", "-c", d.URI, "--live", "--config", name)
	t.Logf("vtrace host setup --live --config:\n%s", out)
	if info, err := domxml.Inspect(inactive()); err != nil || len(info.Channels) != 1+cpus || info.Channels[0].Type != "unix" {
		t.Errorf("persistent XML after setup --live --config: channels %+v (%v), want %d unix channels", info.Channels, err, 1+cpus)
	}
	w.waitConsole(t, at, `msg="ports found"`, 60*time.Second)
	status := vtrace(t, "host", "status", name)
	t.Logf("vtrace host status over the new sockets:\n%s", status)
	if !strings.Contains(status, "idle") {
		t.Errorf("vtrace host status: want the agent idle:\n%s", status)
	}

	// The timeline over the sockets: clock probes on the control socket,
	// the host's own events in host.dat, the vCPU threads from libvirt.
	timeline := filepath.Join(w.dir, "capture-timeline")
	out = vtrace(t, "host", "collect", "-c", d.URI, "--start", name, "-o", timeline, "--events", "sched:sched_switch",
		"--host-events", "sched:sched_switch", "--duration", "3s", "--quiet")
	t.Logf("vtrace host collect --host-events over unix sockets:\n%s", out)
	if !strings.Contains(out, "clock mono: guest − host ") {
		t.Errorf("no clock fit over the sockets:\n%s", out)
	}
	checkReport(t, timeline, scanCaptures(t, cpus, timeline))
	merged, err := exec.Command("trace-cmd", "report", "-i", filepath.Join(timeline, "host.dat"), "-i", filepath.Join(timeline, "trace.dat")).Output()
	if err != nil || !bytes.Contains(merged, []byte("host.dat:")) || !bytes.Contains(merged, []byte("trace.dat:")) {
		t.Errorf("trace-cmd report -i host.dat -i trace.dat: %v; want the lines of both files (%d bytes)", err, len(merged))
	}

	vtrace(t, "host", "teardown", "-c", d.URI, "--live", "--config", name)
	if info, err := domxml.Inspect(inactive()); err != nil || len(info.Channels) != 0 {
		t.Errorf("persistent XML after teardown --live --config: channels %+v (%v), want none", info.Channels, err)
	}
	if got := id(); got != bootID {
		t.Errorf("domain id %d, was %d at boot: the domain restarted", got, bootID)
	}
	if b, _ := os.ReadFile(w.console); bytes.Count(b, []byte("VTRACE-BOOT")) > 1 {
		t.Errorf("the guest booted more than once:\n%s", b)
	}
}

// cpuCounters reads the per-CPU table of `vtrace host status` or `stop`:
// by CPU, entries, read, overrun, commit overrun, dropped, bytes sent,
// pages sent.
func cpuCounters(t *testing.T, out string) map[int][7]uint64 {
	t.Helper()
	rows := map[int][7]uint64{}
	for _, line := range strings.Split(out, "\n") {
		f := strings.Fields(line)
		if len(f) != 8 {
			continue
		}
		var n [8]uint64
		ok := true
		for i := range f {
			v, err := strconv.ParseUint(f[i], 10, 64)
			n[i], ok = v, ok && err == nil
		}
		if ok {
			rows[int(n[0])] = [7]uint64(n[1:])
		}
	}
	return rows
}
