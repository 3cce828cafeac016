package domxml

import (
	"fmt"
	"path"
	"strings"

	"github.com/vtrace/vtrace/proto/channel"
)

// qemuSpare is how many ports QemuArgs leaves free on the controller
// that holds the last channel, once it sets max_ports: room for ports of
// the user's own (a guest agent, a test port) on the same bus.
const qemuSpare = 8

// QemuArgs returns the qemu options that give a guest the trace channels
// without libvirt, as in the kernel's virtio-trace README: virtio-serial
// controllers, then a pipe chardev and a virtserialport per channel, the
// control port on nr=1 of vtrace-serial0 and trace-path-cpuN on nr=N+2
// (port 0 belongs to virtconsole). cpus is the guest's maximum vCPU count
// (-smp maxcpus). One controller holds up to 510 channels: up to 28 vCPUs
// it has qemu's default 31 ports; beyond, its max_ports leaves qemuSpare
// ports free (at most 511); beyond 509 vCPUs, vtrace-serial1 and on take
// the rest. Each element is one option with its value ("-device X").
func QemuArgs(dir string, cpus int) []string {
	names := channel.Names(cpus)
	const perCtl = maxPorts - 1 // ports 1 to 510: qemu's limit, not libvirt's schema's
	ctls := max(1, (len(names)+perCtl-1)/perCtl)
	var args []string
	for k := range ctls {
		n := min(perCtl, len(names)-k*perCtl) // channels on this one
		dev := fmt.Sprintf("-device virtio-serial-pci,id=vtrace-serial%d", k)
		if n+1 >= defaultPorts { // fewer than one port left free
			dev += fmt.Sprintf(",max_ports=%d", min(maxPorts, n+1+qemuSpare))
		}
		args = append(args, dev)
	}
	for i, name := range names {
		id := fmt.Sprintf("vtrace%d", i)
		// qemu doubles a comma inside an option value.
		p := strings.ReplaceAll(path.Join(dir, name), ",", ",,")
		args = append(args,
			"-chardev "+shellQuote("pipe,id="+id+",path="+p),
			fmt.Sprintf("-device virtserialport,bus=vtrace-serial%d.0,nr=%d,chardev=%s,id=%s-port,name=%s", i/perCtl, i%perCtl+1, id, id, name))
	}
	return args
}

// FormatQemuArgs lays args out one per line, continued with backslashes, as
// they would be pasted into a shell command.
func FormatQemuArgs(args []string) string {
	var b strings.Builder
	for i, a := range args {
		b.WriteString("  " + a)
		if i < len(args)-1 {
			b.WriteString(" \\")
		}
		b.WriteString("\n")
	}
	return b.String()
}

// shellQuote quotes s for a POSIX shell when it holds anything but safe
// characters.
func shellQuote(s string) string {
	safe := true
	for _, r := range s {
		if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || strings.ContainsRune("-_./,=:+@%", r)) {
			safe = false
			break
		}
	}
	if safe && s != "" {
		return s
	}
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}
