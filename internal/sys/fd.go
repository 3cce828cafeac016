package sys

import (
	"errors"
	"os"

	"golang.org/x/sys/unix"
)

// Open flags (O_CLOEXEC is always added by Open).
const (
	ORdonly   = unix.O_RDONLY
	ORdwr     = unix.O_RDWR
	ONonblock = unix.O_NONBLOCK
	// ONofollow makes an open fail (ELOOP) on a symlink in the last component.
	ONofollow = unix.O_NOFOLLOW
	// ODirectory makes an open fail (ENOTDIR) unless path is a directory.
	ODirectory = unix.O_DIRECTORY
)

// Open opens path with O_CLOEXEC added to flags.
func Open(path string, flags int, perm uint32) (int, error) {
	fd, err := retry(func() (int, error) { return unix.Open(path, flags|unix.O_CLOEXEC, perm) })
	if err != nil {
		return -1, &os.PathError{Op: "open", Path: path, Err: err}
	}
	return fd, nil
}

// Close closes fd, ignoring EINTR as Linux does (the fd is gone either
// way). A negative fd is not open: closing it does nothing.
func Close(fd int) error {
	if fd < 0 {
		return nil
	}
	err := unix.Close(fd)
	if err != nil && !errors.Is(err, unix.EINTR) {
		return os.NewSyscallError("close", err)
	}
	return nil
}

// Read reads into p, retrying on EINTR.
func Read(fd int, p []byte) (int, error) {
	n, err := retry(func() (int, error) { return unix.Read(fd, p) })
	if err != nil {
		return 0, os.NewSyscallError("read", err)
	}
	return n, nil
}

// Write writes p once, retrying on EINTR; it may write less than len(p).
func Write(fd int, p []byte) (int, error) {
	n, err := retry(func() (int, error) { return unix.Write(fd, p) })
	if err != nil {
		return 0, os.NewSyscallError("write", err)
	}
	return n, nil
}

// SetNonblock switches O_NONBLOCK on or off.
func SetNonblock(fd int, on bool) error {
	if err := unix.SetNonblock(fd, on); err != nil {
		return os.NewSyscallError("fcntl O_NONBLOCK", err)
	}
	return nil
}

// SetAsync makes the kernel send this process SIGIO when fd becomes
// readable or, for a virtio port, when its host end opens or closes
// (fcntl F_SETOWN and O_ASYNC).
func SetAsync(fd int) error {
	if _, err := unix.FcntlInt(uintptr(fd), unix.F_SETOWN, unix.Getpid()); err != nil {
		return os.NewSyscallError("fcntl F_SETOWN", err)
	}
	fl, err := unix.FcntlInt(uintptr(fd), unix.F_GETFL, 0)
	if err == nil {
		_, err = unix.FcntlInt(uintptr(fd), unix.F_SETFL, fl|unix.O_ASYNC)
	}
	if err != nil {
		return os.NewSyscallError("fcntl O_ASYNC", err)
	}
	return nil
}

// SIGIO is the signal SetAsync asks for.
const SIGIO = unix.SIGIO
