// Package sys is the one place where vtrace talks to the kernel through
// golang.org/x/sys/unix: splice, poll, pipes, eventfds and CPU affinity.
//
// Every wrapper retries on EINTR and reports failures as *os.SyscallError,
// so callers compare with errors.Is(err, unix.EAGAIN) and friends. The hot
// path of both the guest agent and the host collector is built from these
// few functions; keep them small and allocation-free.
//
// Lifecycle: fds returned here are owned by the caller, who closes them
// with Close. A Waker is the way to interrupt a goroutine blocked in Poll:
// Close on its own does not wake a poll(2) sleeping on a raw fd.
package sys

import (
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"
)

// Common errno values, re-exported so packages outside internal/sys need not
// import golang.org/x/sys/unix for comparisons.
var (
	EAGAIN = unix.EAGAIN
	EINVAL = unix.EINVAL
	EPIPE  = unix.EPIPE
	ENXIO  = unix.ENXIO
	EBADF  = unix.EBADF
	ENOSPC = unix.ENOSPC
)

// Splice flags.
const (
	SpliceMove     = unix.SPLICE_F_MOVE
	SpliceNonblock = unix.SPLICE_F_NONBLOCK
	SpliceMore     = unix.SPLICE_F_MORE
)

// Open opens path with O_CLOEXEC added to flags.
func Open(path string, flags int, perm uint32) (int, error) {
	for {
		fd, err := unix.Open(path, flags|unix.O_CLOEXEC, perm)
		if errors.Is(err, unix.EINTR) {
			continue
		}
		if err != nil {
			return -1, &os.PathError{Op: "open", Path: path, Err: err}
		}
		return fd, nil
	}
}

// Close closes fd, ignoring EINTR as Linux does (the fd is gone either way).
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

// Splice moves up to n bytes from in to out. One of them must be a pipe.
// It returns 0, nil at end of input.
func Splice(in, out, n, flags int) (int, error) {
	for {
		m, err := unix.Splice(in, nil, out, nil, n, flags)
		if errors.Is(err, unix.EINTR) {
			continue
		}
		if err != nil {
			return 0, os.NewSyscallError("splice", err)
		}
		return int(m), nil
	}
}

// Read reads into p, retrying on EINTR.
func Read(fd int, p []byte) (int, error) {
	for {
		n, err := unix.Read(fd, p)
		if errors.Is(err, unix.EINTR) {
			continue
		}
		if err != nil {
			return 0, os.NewSyscallError("read", err)
		}
		return n, nil
	}
}

// Write writes p once, retrying on EINTR; it may write less than len(p).
func Write(fd int, p []byte) (int, error) {
	for {
		n, err := unix.Write(fd, p)
		if errors.Is(err, unix.EINTR) {
			continue
		}
		if err != nil {
			return 0, os.NewSyscallError("write", err)
		}
		return n, nil
	}
}

// Pipe makes a non-blocking, close-on-exec pipe and asks the kernel for a
// buffer of size bytes (0 keeps the default). It returns the size granted.
func Pipe(size int) (r, w, granted int, err error) {
	var p [2]int
	if err := unix.Pipe2(p[:], unix.O_CLOEXEC|unix.O_NONBLOCK); err != nil {
		return -1, -1, 0, os.NewSyscallError("pipe2", err)
	}
	granted, err = unix.FcntlInt(uintptr(p[1]), unix.F_GETPIPE_SZ, 0)
	if err == nil && size > 0 {
		granted, err = unix.FcntlInt(uintptr(p[1]), unix.F_SETPIPE_SZ, size)
	}
	if err != nil {
		unix.Close(p[0])
		unix.Close(p[1])
		return -1, -1, 0, os.NewSyscallError("fcntl F_SETPIPE_SZ", err)
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
		return 0, os.NewSyscallError("ioctl FIONREAD", err)
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

// PageSize is the machine's memory page size.
func PageSize() int { return unix.Getpagesize() }

// SetAffinity binds the calling OS thread to cpu. The caller must have
// called runtime.LockOSThread first, or the binding lands on whatever
// thread the goroutine happens to run on.
func SetAffinity(cpu int) error {
	var set unix.CPUSet
	set.Zero()
	set.Set(cpu)
	if err := unix.SchedSetaffinity(0, &set); err != nil {
		return os.NewSyscallError("sched_setaffinity", err)
	}
	return nil
}

// Affinity returns the CPUs the calling thread may run on.
func Affinity() ([]int, error) {
	var set unix.CPUSet
	if err := unix.SchedGetaffinity(0, &set); err != nil {
		return nil, os.NewSyscallError("sched_getaffinity", err)
	}
	var cpus []int
	for i := 0; i < len(set)*64; i++ {
		if set.IsSet(i) {
			cpus = append(cpus, i)
		}
	}
	return cpus, nil
}

// Fsync flushes fd to stable storage.
func Fsync(fd int) error {
	for {
		err := unix.Fsync(fd)
		if errors.Is(err, unix.EINTR) {
			continue
		}
		if err != nil {
			return os.NewSyscallError("fsync", err)
		}
		return nil
	}
}

// Ftruncate sets the size of fd.
func Ftruncate(fd int, size int64) error {
	if err := unix.Ftruncate(fd, size); err != nil {
		return os.NewSyscallError("ftruncate", err)
	}
	return nil
}

// Mkfifo creates a FIFO at path with mode perm (subject to umask).
func Mkfifo(path string, perm uint32) error {
	if err := unix.Mkfifo(path, perm); err != nil {
		return &os.PathError{Op: "mkfifo", Path: path, Err: err}
	}
	return nil
}
