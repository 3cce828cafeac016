package sys

import (
	"os"

	"golang.org/x/sys/unix"
)

// Release is the running kernel's release, as `uname -r` prints it.
func Release() (string, error) {
	var u unix.Utsname
	if err := unix.Uname(&u); err != nil {
		return "", os.NewSyscallError("uname", err)
	}
	b := u.Release[:]
	for i, c := range b {
		if c == 0 {
			b = b[:i]
			break
		}
	}
	return string(b), nil
}

// More errno values the guest agent meets in tracefs.
var (
	EBUSY  = unix.EBUSY
	ENOMEM = unix.ENOMEM
)

// MemFile returns an anonymous file in memory (memfd_create, close-on-exec):
// a spool whose pages the kernel holds, not the Go heap.
func MemFile(name string) (*os.File, error) {
	fd, err := unix.MemfdCreate(name, unix.MFD_CLOEXEC)
	if err != nil {
		return nil, os.NewSyscallError("memfd_create", err)
	}
	return os.NewFile(uintptr(fd), "memfd:"+name), nil
}
