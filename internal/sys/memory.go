package sys

import (
	"os"

	"golang.org/x/sys/unix"
)

// PageSize is the machine's memory page size.
func PageSize() int { return unix.Getpagesize() }

// MemFile returns an anonymous file in memory (memfd_create, close-on-exec):
// a spool whose pages the kernel holds, not the Go heap.
func MemFile(name string) (*os.File, error) {
	fd, err := unix.MemfdCreate(name, unix.MFD_CLOEXEC)
	if err != nil {
		return nil, os.NewSyscallError("memfd_create", err)
	}
	return os.NewFile(uintptr(fd), "memfd:"+name), nil
}
