package guest

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/vtrace/vtrace/proto/channel"
)

// dataPortNames are the names CPU cpu's data port may have: the kernel's C
// agent's, then trace-cmd's.
func dataPortNames(cpu int) []string {
	return []string{channel.Data(cpu), channel.TraceCmdData(cpu)}
}

// portFinder locates virtio-serial ports by name.
type portFinder struct {
	dir      string // --ports-dir, normally /dev/virtio-ports
	sysClass string // /sys/class/virtio-ports
	dev      string // /dev
}

// find returns the path to open for the port called one of names. In
// order: DIR/NAME (a udev link, device or FIFO); DIR/NAME.in and
// DIR/NAME.out both present, which is a host's FIFO directory used on this
// machine ("loopback": the agent reads NAME.in when in is true and writes
// NAME.out otherwise); a port whose /sys/class/virtio-ports/*/name is NAME,
// opened as /dev/vportXpY (busybox guests have no udev links).
func (f portFinder) find(names []string, in bool) (string, error) {
	for _, n := range names {
		p := filepath.Join(f.dir, n)
		if _, err := os.Stat(p); err == nil {
			return p, nil
		}
		if exists(p+".in") && exists(p+".out") {
			if in {
				return p + ".in", nil
			}
			return p + ".out", nil
		}
	}
	entries, _ := os.ReadDir(f.sysClass)
	for _, n := range names {
		for _, e := range entries {
			b, err := os.ReadFile(filepath.Join(f.sysClass, e.Name(), "name"))
			if err == nil && strings.TrimSpace(string(b)) == n {
				return filepath.Join(f.dev, e.Name()), nil
			}
		}
	}
	return "", fmt.Errorf("find port %s: not in %s (as %s, or a .in/.out FIFO pair) and no %s/*/name says so; "+
		"give the guest a virtserialport named %s (on the host: vtrace host setup <domain>, then restart the domain; "+
		"plain qemu: vtrace host qemu-args), or point --ports-dir at the port directory",
		names[0], f.dir, strings.Join(names, " or "), f.sysClass, names[0])
}
