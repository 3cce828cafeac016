package guest

import (
	"errors"
	"os"
	"path/filepath"
	"slices"
	"testing"

	"github.com/vtrace/vtrace/proto/channel"
)

// TestUeventField reads the fields of a uevent as the kernel sends one
// when a virtio-serial port gets its name (lib/kobject_uevent.c: the
// header, then NUL-separated KEY=VALUE).
func TestUeventField(t *testing.T) {
	ev := []byte("change@/devices/pci0000:00/0000:00:04.0/virtio1/virtio-ports/vport1p2\x00" +
		"ACTION=change\x00DEVPATH=/devices/pci0000:00/0000:00:04.0/virtio1/virtio-ports/vport1p2\x00" +
		"SUBSYSTEM=virtio-ports\x00MAJOR=247\x00MINOR=2\x00DEVNAME=vport1p2\x00SEQNUM=1771\x00")
	for key, want := range map[string]string{"ACTION": "change", "SUBSYSTEM": "virtio-ports", "DEVNAME": "vport1p2", "NAME": ""} {
		if got := ueventField(ev, key); got != want {
			t.Errorf("ueventField(%s) = %q, want %q", key, got, want)
		}
	}
}

// TestPortWatch opens the kernel's uevent socket and checks that a wake
// ends a wait on it, and that missing lists the ports a finder cannot
// find (control port first, then by CPU) until they are there.
func TestPortWatch(t *testing.T) {
	w, err := openPortWatch()
	if err != nil {
		t.Fatal(err)
	}
	defer w.close()
	w.waker.Wake()
	if _, err := w.next(); !errors.Is(err, errWatchEnded) {
		t.Errorf("next after a wake: %v, want errWatchEnded", err)
	}

	dir := t.TempDir()
	f := portFinder{dir: dir, sysClass: filepath.Join(dir, "none"), dev: dir}
	if got, want := f.missing([]int{0, 1}), []string{channel.Ctl, channel.Data(0), channel.Data(1)}; !slices.Equal(got, want) {
		t.Errorf("missing = %q, want %q", got, want)
	}
	for _, n := range []string{channel.Ctl, channel.TraceCmdData(1)} {
		if err := os.WriteFile(filepath.Join(dir, n), nil, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	if got, want := f.missing([]int{0, 1}), []string{channel.Data(0)}; !slices.Equal(got, want) {
		t.Errorf("missing = %q, want %q", got, want)
	}
}
