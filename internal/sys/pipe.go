package sys

import (
	"fmt"
	"os"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"
)

// SpliceNonblock is splice(2)'s SPLICE_F_NONBLOCK. (SPLICE_F_MOVE is not
// offered: it is a no-op since Linux 2.6.21 for every file vtrace splices.)
const SpliceNonblock = unix.SPLICE_F_NONBLOCK

// Splice moves up to n bytes from in to out. One of them must be a pipe.
// It returns 0, nil at end of input.
func Splice(in, out, n, flags int) (int, error) {
	m, err := retry(func() (int64, error) { return unix.Splice(in, nil, out, nil, n, flags) })
	if err != nil {
		return 0, os.NewSyscallError("splice", err)
	}
	return int(m), nil
}

// Pipe makes a non-blocking, close-on-exec pipe and asks the kernel for a
// buffer of size bytes (0 keeps the default). It returns the size granted.
func Pipe(size int) (r, w, granted int, err error) {
	var p [2]int
	if err := unix.Pipe2(p[:], unix.O_CLOEXEC|unix.O_NONBLOCK); err != nil {
		return -1, -1, 0, os.NewSyscallError("pipe2", err)
	}
	op := "fcntl F_GETPIPE_SZ"
	granted, err = unix.FcntlInt(uintptr(p[1]), unix.F_GETPIPE_SZ, 0)
	if err == nil && size > 0 {
		op = "fcntl F_SETPIPE_SZ"
		granted, err = unix.FcntlInt(uintptr(p[1]), unix.F_SETPIPE_SZ, size)
	}
	if err != nil {
		unix.Close(p[0])
		unix.Close(p[1])
		return -1, -1, 0, os.NewSyscallError(op, err)
	}
	return p[0], p[1], granted, nil
}

// SetPipeSize asks for a pipe buffer of size bytes on fd (a pipe or FIFO)
// and returns the size granted.
func SetPipeSize(fd, size int) (int, error) {
	n, err := unix.FcntlInt(uintptr(fd), unix.F_SETPIPE_SZ, size)
	if err != nil {
		return 0, os.NewSyscallError("fcntl F_SETPIPE_SZ", err)
	}
	return n, nil
}

// PipeBuffered reports how many bytes are waiting in a pipe or FIFO.
func PipeBuffered(fd int) (int, error) {
	n, err := unix.IoctlGetInt(fd, unix.TIOCINQ)
	if err != nil {
		return 0, os.NewSyscallError("ioctl TIOCINQ", err)
	}
	return n, nil
}

// PipeMaxSize is /proc/sys/fs/pipe-max-size, the largest pipe an
// unprivileged process may ask for.
func PipeMaxSize() (int, error) {
	b, err := os.ReadFile("/proc/sys/fs/pipe-max-size")
	if err != nil {
		return 0, fmt.Errorf("read pipe-max-size: %w", err)
	}
	n, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil {
		return 0, fmt.Errorf("parse pipe-max-size: %w", err)
	}
	return n, nil
}
