package sys

import (
	"errors"
	"os"

	"golang.org/x/sys/unix"
)

// ConnectUnix connects a non-blocking, close-on-exec stream socket to the
// unix socket at path (a qemu chardev listening with server=on, as
// libvirt's <source mode='bind'/> makes it) and returns it. A listener that
// has not accepted yet does not make it wait: the kernel queues the
// connection, and reads wait for readiness as on a FIFO. The caller owns
// the descriptor.
func ConnectUnix(path string) (int, error) {
	fd, err := unix.Socket(unix.AF_UNIX, unix.SOCK_STREAM|unix.SOCK_CLOEXEC|unix.SOCK_NONBLOCK, 0)
	if err != nil {
		return -1, os.NewSyscallError("socket", err)
	}
	err = retryErr(func() error { return unix.Connect(fd, &unix.SockaddrUnix{Name: path}) })
	if errors.Is(err, unix.EINPROGRESS) || errors.Is(err, unix.EAGAIN) {
		// A full backlog: wait for the connection to complete.
		if _, _, perr := Poll(fd, Out, nil, -1); perr != nil {
			unix.Close(fd)
			return -1, perr
		}
		var serr int
		if serr, err = unix.GetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_ERROR); err == nil && serr != 0 {
			err = unix.Errno(serr)
		}
	}
	if err != nil {
		unix.Close(fd)
		return -1, &os.PathError{Op: "connect", Path: path, Err: err}
	}
	return fd, nil
}

// SetRecvBuffer asks for a socket receive buffer of size bytes (the kernel
// caps it at net.core.rmem_max; root may exceed that) and returns what it
// granted.
func SetRecvBuffer(fd, size int) (int, error) {
	err := unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_RCVBUFFORCE, size)
	if err != nil {
		err = unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_RCVBUF, size)
	}
	if err != nil {
		return 0, os.NewSyscallError("setsockopt SO_RCVBUF", err)
	}
	got, err := unix.GetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_RCVBUF)
	if err != nil {
		return 0, os.NewSyscallError("getsockopt SO_RCVBUF", err)
	}
	return got, nil
}

// Dup duplicates fd (close-on-exec).
func Dup(fd int) (int, error) {
	n, err := unix.FcntlInt(uintptr(fd), unix.F_DUPFD_CLOEXEC, 0)
	if err != nil {
		return -1, os.NewSyscallError("fcntl F_DUPFD_CLOEXEC", err)
	}
	return n, nil
}
