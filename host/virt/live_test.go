package virt

import (
	"bytes"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/vtrace/vtrace/host/domxml"
	"github.com/vtrace/vtrace/host/fifo"
	"github.com/vtrace/vtrace/internal/testutil"
	"github.com/vtrace/vtrace/proto/channel"
)

const serialController = `
    <controller type='virtio-serial'/>`

// TestIntegrationLiveRefusals checks what SetupLive refuses, each before
// anything is made or attached: a domain that does not run, a running one
// without a virtio-serial controller, a socket path too long for an
// address, and a regular file where a socket goes.
func TestIntegrationLiveRefusals(t *testing.T) {
	c, _ := connect(t)
	l := c.Libvirt()
	base := testutil.ReachableDir(t)

	off := define(t, c, 1, serialController)
	dir := filepath.Join(base, "off")
	if _, err := SetupLive(c, Options{Domain: off, Dir: dir, Group: -1}); !errors.Is(err, ErrNotRunning) ||
		!strings.Contains(err.Error(), "without --live") {
		t.Errorf("SetupLive of a domain that does not run: %v, want ErrNotRunning saying what to do", err)
	}
	if _, err := TeardownLive(c, Options{Domain: off, Dir: dir, Group: -1}); !errors.Is(err, ErrNotRunning) {
		t.Errorf("TeardownLive of a domain that does not run: %v, want ErrNotRunning", err)
	}

	bare := define(t, c, 1, "")
	start(t, c, bare)
	dir = filepath.Join(base, "bare")
	if _, err := SetupLive(c, Options{Domain: bare, Dir: dir, Group: -1}); err == nil ||
		!strings.Contains(err.Error(), "no virtio-serial controller") || !strings.Contains(err.Error(), "restart") {
		t.Errorf("SetupLive without a virtio-serial controller: %v, want a refusal saying what to do", err)
	}

	name := define(t, c, 1, serialController)
	start(t, c, name)
	long := filepath.Join(base, strings.Repeat("d", 100))
	if _, err := SetupLive(c, Options{Domain: name, Dir: long, Group: -1}); err == nil || !strings.Contains(err.Error(), "--dir") {
		t.Errorf("SetupLive with a socket path too long: %v, want an error pointing to --dir", err)
	}
	dir = filepath.Join(base, "taken")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	taken := filepath.Join(dir, channel.Data(0))
	if err := os.WriteFile(taken, []byte("mine"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := SetupLive(c, Options{Domain: name, Dir: dir, Group: -1}); err == nil || !strings.Contains(err.Error(), taken) {
		t.Errorf("SetupLive over a regular file: %v, want a refusal naming %s", err, taken)
	}
	if b, _ := os.ReadFile(taken); string(b) != "mine" {
		t.Errorf("%s changed: %q", taken, b)
	}
	for _, n := range []string{bare, name} {
		dom, _ := l.DomainLookupByName(n)
		live, err := l.DomainGetXMLDesc(dom, 0)
		if err != nil {
			t.Fatal(err)
		}
		if info := inspect(t, []byte(live)); len(info.Channels) != 0 {
			t.Errorf("%s got channels from a refused setup: %+v", n, info.Channels)
		}
	}
	for _, d := range []string{filepath.Join(base, "off"), filepath.Join(base, "bare"), long} {
		if _, err := os.Lstat(d); !errors.Is(err, fs.ErrNotExist) {
			t.Errorf("a refused setup made %s (%v)", d, err)
		}
	}
}

// TestIntegrationLiveOddDirectory sets up a running domain live with
// sockets in a directory whose name has XML's special characters, then
// again (nothing changes), then tears it down: the paths reach libvirt
// intact and the persistent XML never changes.
func TestIntegrationLiveOddDirectory(t *testing.T) {
	c, _ := connect(t)
	name := define(t, c, 2, serialController)
	start(t, c, name)
	before := inactive(t, c, name)
	dir := filepath.Join(testutil.ReachableDir(t), `a'b"c<d>&e`)
	r, err := SetupLive(c, Options{Domain: name, Dir: dir, Group: 54321})
	if err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	r.WriteSetup(&out)
	t.Logf("SetupLive:\n%s", out.String())
	if want := channel.Names(2); strings.Join(r.Attached, " ") != strings.Join(want, " ") {
		t.Errorf("attached %q, want %q", r.Attached, want)
	}
	dom, _ := c.Libvirt().DomainLookupByName(name)
	live, err := c.Libvirt().DomainGetXMLDesc(dom, 0)
	if err != nil {
		t.Fatal(err)
	}
	info := inspect(t, []byte(live))
	if got, ok := info.FIFODir(); !ok || got != dir || len(info.Channels) != 3 {
		t.Errorf("live channels %+v in %q, want 3 in %q", info.Channels, got, dir)
	}
	for _, n := range channel.Names(2) {
		st, err := os.Lstat(filepath.Join(dir, n))
		if err != nil || st.Mode() != fs.ModeSocket|fifo.FIFOPerm {
			t.Errorf("%s: %v, %v; want a socket of mode %v", n, st, err, fs.ModeSocket|fifo.FIFOPerm)
		}
	}
	if fifo.Detect(dir) != fifo.Sockets {
		t.Errorf("Detect(%s): not sockets", dir)
	}
	r, err = SetupLive(c, Options{Domain: name, Dir: dir, Group: 54321})
	if err != nil || len(r.Attached)+len(r.Detached) != 0 {
		t.Errorf("second SetupLive: attached %q, detached %q, %v; want nothing", r.Attached, r.Detached, err)
	}
	r, err = TeardownLive(c, Options{Domain: name, Group: -1})
	if err != nil {
		t.Fatal(err)
	}
	if r.Dir != dir || len(r.Detached) != 3 {
		t.Errorf("TeardownLive: dir %q, detached %q; want the 3 channels of %q", r.Dir, r.Detached, dir)
	}
	if _, err := os.Lstat(dir); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("TeardownLive left %s (%v)", dir, err)
	}
	if after := inactive(t, c, name); !bytes.Equal(after, before) {
		t.Errorf("the persistent XML changed:\n%s", domxml.Diff("before", "after", before, after))
	}
}

// start starts domain name.
func start(t *testing.T, c *Conn, name string) {
	t.Helper()
	dom, err := c.Libvirt().DomainLookupByName(name)
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Libvirt().DomainCreate(dom); err != nil {
		t.Fatalf("start %s: %v", name, err)
	}
}
