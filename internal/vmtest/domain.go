package vmtest

import (
	"fmt"
	"html"
)

// Domain describes a libvirt domain that boots the test guest directly.
type Domain struct {
	Name           string
	CPUs           int
	Kernel, Initrd string // paths on the host that qemu's user can read
	Args           string // the guest's vtrace.* settings (docs/guest.md), after the fixed kernel arguments
	Console        string // file the serial console is written to
	VirtioSerial   bool   // declare a virtio-serial controller (hot-plugged channels need one)
}

// XML is d's definition: type qemu (TCG), 512 MiB, the kernel command line
// "console=ttyS0 quiet panic=-1 no_timer_check ARGS", and ACPI, as a
// domain virt-install makes has: without it the guest finds no HPET or
// ACPI PM timer, its clocksource is jiffies and its trace clock moves in
// 4 ms steps, too coarse for clock probes. It has no channels: `vtrace
// host setup` adds them.
func (d Domain) XML() string {
	controller := ""
	if d.VirtioSerial {
		controller = "\n    <controller type='virtio-serial'/>"
	}
	e := html.EscapeString
	return fmt.Sprintf(`<domain type='qemu'>
  <name>%s</name>
  <memory unit='MiB'>512</memory>
  <vcpu>%d</vcpu>
  <os>
    <type arch='x86_64' machine='pc'>hvm</type>
    <kernel>%s</kernel>
    <initrd>%s</initrd>
    <cmdline>console=ttyS0 quiet panic=-1 no_timer_check %s</cmdline>
  </os>
  <features>
    <acpi/>
  </features>
  <on_poweroff>destroy</on_poweroff>
  <on_reboot>destroy</on_reboot>
  <on_crash>destroy</on_crash>
  <devices>%s
    <serial type='file'>
      <source path='%s'/>
      <target port='0'/>
    </serial>
    <memballoon model='none'/>
  </devices>
</domain>`, e(d.Name), d.CPUs, e(d.Kernel), e(d.Initrd), e(d.Args), controller, e(d.Console))
}
