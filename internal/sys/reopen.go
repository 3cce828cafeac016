package sys

import (
	"errors"
	"os"
	"strconv"

	"golang.org/x/sys/unix"
)

// ErrNotReopenable: the file open at an fd cannot be opened again by its
// /proc/self/fd link (a socket, an anonymous inode), or what opened is not
// the same file.
var ErrNotReopenable = errors.New("cannot be opened again through /proc/self/fd")

// ReopenWriteNonblock opens the file open at fd again, write-only,
// non-blocking and close-on-exec, through /proc/self/fd/FD: a pipe, a FIFO
// or a terminal then has an open file description of its own, whose
// O_NONBLOCK does not change how others sharing fd's (a shell, the
// process's parent) read or write it. It fails with ErrNotReopenable for a
// socket, and with ENXIO for a FIFO nobody reads.
func ReopenWriteNonblock(fd int) (int, error) {
	var want, got unix.Stat_t
	if err := unix.Fstat(fd, &want); err != nil {
		return -1, os.NewSyscallError("fstat", err)
	}
	if want.Mode&unix.S_IFMT == unix.S_IFSOCK {
		return -1, ErrNotReopenable
	}
	nfd, err := Open("/proc/self/fd/"+strconv.Itoa(fd), unix.O_WRONLY|unix.O_NONBLOCK|unix.O_NOCTTY, 0)
	if err != nil {
		return -1, err
	}
	if err := unix.Fstat(nfd, &got); err != nil || got.Dev != want.Dev || got.Ino != want.Ino || got.Rdev != want.Rdev {
		unix.Close(nfd)
		return -1, ErrNotReopenable
	}
	return nfd, nil
}

// PipeSize is the size of the pipe or FIFO open at fd, in bytes
// (F_GETPIPE_SZ: its slots times the page size).
func PipeSize(fd int) (int, error) {
	n, err := unix.FcntlInt(uintptr(fd), unix.F_GETPIPE_SZ, 0)
	if err != nil {
		return 0, os.NewSyscallError("fcntl F_GETPIPE_SZ", err)
	}
	return n, nil
}
