package domxml

import (
	"fmt"
	"path"
	"strings"

	"github.com/vtrace/vtrace/proto/channel"
)

// QemuArgs returns the qemu options that give a guest the trace channels
// without libvirt, as in the kernel's virtio-trace README: one virtio-serial
// controller, then a pipe chardev and a virtserialport per channel, the
// control port on nr=1 and trace-path-cpuN on nr=N+2 (port 0 belongs to
// virtconsole). Each element is one option with its value ("-device X").
func QemuArgs(dir string, cpus int) []string {
	args := []string{"-device virtio-serial-pci,id=vtrace-serial0"}
	for i, name := range channel.Names(cpus) {
		id := fmt.Sprintf("vtrace%d", i)
		// qemu doubles a comma inside an option value.
		p := strings.ReplaceAll(path.Join(dir, name), ",", ",,")
		args = append(args,
			"-chardev "+shellQuote("pipe,id="+id+",path="+p),
			fmt.Sprintf("-device virtserialport,bus=vtrace-serial0.0,nr=%d,chardev=%s,id=%s-port,name=%s", i+1, id, id, name))
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
