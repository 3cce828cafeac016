package guest

import (
	"errors"
	"fmt"

	"os"
	"path/filepath"
	"strings"

	"github.com/vtrace/vtrace/internal/sys"
	"github.com/vtrace/vtrace/internal/textlog"
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
		"give the guest a virtserialport named %s (on the host: vtrace host setup <domain>, then restart the domain, "+
		"or vtrace host setup --live <domain>; plain qemu: vtrace host qemu-args), or point --ports-dir at the port directory",
		names[0], f.dir, strings.Join(names, " or "), f.sysClass, names[0])
}

// sysClassPorts is where the kernel's virtio_console driver lists the
// ports, each with its name (sent by the host) in NAME/name.
const sysClassPorts = "/sys/class/virtio-ports"

// missing returns the first name of every port the agent needs and f
// cannot find: the control port and the data port of every CPU of cpus.
func (f portFinder) missing(cpus []int) []string {
	var m []string
	if _, err := f.find([]string{channel.Ctl}, true); err != nil {
		m = append(m, channel.Ctl)
	}
	for _, cpu := range cpus {
		if _, err := f.find(dataPortNames(cpu), false); err != nil {
			m = append(m, channel.Data(cpu))
		}
	}
	return m
}

// portWatch reports the kernel's uevents of virtio-serial ports: a port
// that appears (add, then change once the host has sent its name) or goes
// away (remove, when the host unplugs it). It reads a netlink socket that
// the kernel writes to only when a device changes, so an idle guest is
// never woken by it.
type portWatch struct {
	fd    int
	waker *sys.Waker // ends a wait: the run it belongs to is over
	buf   []byte
}

func openPortWatch() (*portWatch, error) {
	fd, err := sys.OpenUevents()
	if err != nil {
		return nil, err
	}
	wk, err := sys.NewWaker()
	if err != nil {
		sys.Close(fd)
		return nil, err
	}
	return &portWatch{fd: fd, waker: wk, buf: make([]byte, 16<<10)}, nil
}

func (w *portWatch) close() {
	sys.Close(w.fd)
	w.waker.Close()
}

// errWatchEnded is next's error once the waker fired.
var errWatchEnded = errors.New("port watch ended")

// next waits for the next uevent of a virtio-serial port and returns its
// action ("overflow" when the kernel dropped events), or errWatchEnded
// once the waker fires (the wake-up is cleared).
func (w *portWatch) next() (string, error) {
	for {
		n, err := sys.Read(w.fd, w.buf)
		switch {
		case errors.Is(err, sys.EAGAIN):
			ev, _, err := sys.Poll(w.fd, sys.In, w.waker, -1)
			if err != nil {
				return "", fmt.Errorf("wait for uevents: %w", err)
			}
			if ev == sys.Woken {
				w.waker.Clear()
				return "", errWatchEnded
			}
		case errors.Is(err, sys.ENOBUFS):
			return "overflow", nil
		case err != nil:
			return "", fmt.Errorf("read uevents: %w", err)
		case ueventField(w.buf[:n], "SUBSYSTEM") == "virtio-ports":
			return ueventField(w.buf[:n], "ACTION"), nil
		}
	}
}

// ueventField returns the value of KEY= in a kernel uevent, "" when it
// has none.
func ueventField(b []byte, key string) string {
	for _, f := range strings.Split(string(b), "\x00") {
		if v, ok := strings.CutPrefix(f, key+"="); ok {
			return v
		}
	}
	return ""
}

// waitPorts returns once f finds every port the agent needs for cpus,
// waiting for the kernel's uevents meanwhile and saying in the log which
// ports it waits for, or errWatchEnded when w's waker fires first.
func waitPorts(f portFinder, cpus []int, w *portWatch, log *textlog.Logger) error {
	said := ""
	for {
		m := strings.Join(f.missing(cpus), " ")
		if m == "" {
			if said != "" {
				log.Warn("ports found")
			}
			return nil
		}
		if m != said {
			log.Warn("waiting for ports (on the host: vtrace host setup --live <domain>, no restart)", "missing", m)
			said = m
		}
		if _, err := w.next(); err != nil {
			return err
		}
	}
}

// watchGone waits for a uevent after which a port the agent needs for
// cpus is missing, then calls gone. It returns then, or when w's waker
// fires.
func watchGone(f portFinder, cpus []int, w *portWatch, gone func()) {
	for {
		action, err := w.next()
		if err != nil {
			return
		}
		if action != "add" && len(f.missing(cpus)) > 0 {
			gone()
			return
		}
	}
}
