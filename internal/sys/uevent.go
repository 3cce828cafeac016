package sys

import (
	"os"

	"golang.org/x/sys/unix"
)

// OpenUevents opens a non-blocking netlink socket that receives the
// kernel's device events (NETLINK_KOBJECT_UEVENT, the multicast group the
// kernel itself sends on, with or without udev), to be read after Poll
// says it is readable. Waiting on it costs no wake-up until the kernel
// sends an event. Each datagram is "ACTION@DEVPATH" then NUL-separated
// KEY=VALUE fields (lib/kobject_uevent.c). The caller owns the descriptor.
func OpenUevents() (int, error) {
	fd, err := unix.Socket(unix.AF_NETLINK, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC|unix.SOCK_NONBLOCK, unix.NETLINK_KOBJECT_UEVENT)
	if err != nil {
		return -1, os.NewSyscallError("socket NETLINK_KOBJECT_UEVENT", err)
	}
	if err := unix.Bind(fd, &unix.SockaddrNetlink{Family: unix.AF_NETLINK, Groups: 1}); err != nil {
		unix.Close(fd)
		return -1, os.NewSyscallError("bind NETLINK_KOBJECT_UEVENT", err)
	}
	return fd, nil
}

// ENOBUFS is what a netlink read returns after the kernel dropped events
// that did not fit in the socket's buffer.
var ENOBUFS = unix.ENOBUFS
