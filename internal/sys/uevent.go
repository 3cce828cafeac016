package sys

import (
	"bytes"
	"os"

	"golang.org/x/sys/unix"
)

// OpenUevents opens a netlink socket that receives the kernel's device
// events (NETLINK_KOBJECT_UEVENT, the multicast group the kernel sends on,
// before udev relays anything), non-blocking so that reading it through
// the returned file waits in the Go runtime's poller and Close ends a read.
// Waiting on it costs no wake-up until the kernel sends an event.
func OpenUevents() (*os.File, error) {
	fd, err := unix.Socket(unix.AF_NETLINK, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC|unix.SOCK_NONBLOCK, unix.NETLINK_KOBJECT_UEVENT)
	if err != nil {
		return nil, os.NewSyscallError("socket NETLINK_KOBJECT_UEVENT", err)
	}
	if err := unix.Bind(fd, &unix.SockaddrNetlink{Family: unix.AF_NETLINK, Groups: 1}); err != nil {
		unix.Close(fd)
		return nil, os.NewSyscallError("bind NETLINK_KOBJECT_UEVENT", err)
	}
	return os.NewFile(uintptr(fd), "uevent"), nil
}

// Uevent is one kernel device event: "ACTION@DEVPATH" then KEY=VALUE
// fields (include/linux/kobject.h, lib/kobject_uevent.c).
type Uevent struct {
	Action    string // add, remove, change, ...
	DevPath   string
	Subsystem string
}

// ParseUevent reads a kernel uevent datagram; ok is false for anything
// else (udev's own "libudev" messages, which start differently).
func ParseUevent(b []byte) (ev Uevent, ok bool) {
	fields := bytes.Split(b, []byte{0})
	head, _, found := bytes.Cut(fields[0], []byte("@"))
	if !found || len(head) == 0 {
		return ev, false
	}
	for _, f := range fields[1:] {
		k, v, found := bytes.Cut(f, []byte("="))
		if !found {
			continue
		}
		switch string(k) {
		case "ACTION":
			ev.Action = string(v)
		case "DEVPATH":
			ev.DevPath = string(v)
		case "SUBSYSTEM":
			ev.Subsystem = string(v)
		}
	}
	return ev, ev.Action != ""
}
