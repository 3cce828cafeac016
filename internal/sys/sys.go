// Package sys is the one place where vtrace talks to the kernel through
// golang.org/x/sys/unix. Each file holds one kind of call: fd.go (open,
// close, read, write), pipe.go (pipes and splice), poll.go (poll and the
// Waker that interrupts it), affinity.go, at.go (the *at calls that never
// follow a symlink), durable.go (fsync, syncfs), fifo.go, flock.go,
// memory.go (memfd, page size), copy.go (copy_file_range), uname.go, term.go and
// clock.go (the trace clocks clock_gettime reads).
//
// Every wrapper retries on EINTR (retry) and reports failures as *os.SyscallError
// or *os.PathError, so callers compare with errors.Is(err, sys.EAGAIN) and
// friends. The hot paths of both the guest agent and the host collector are
// built from these few functions; keep them small and allocation-free.
//
// Lifecycle: fds returned here are owned by the caller, who closes them
// with Close. A Waker is the way to interrupt a goroutine blocked in Poll:
// Close on its own does not wake a poll(2) sleeping on a raw fd.
package sys

import (
	"errors"

	"golang.org/x/sys/unix"
)

// Errno values, re-exported so packages outside internal/sys need not
// import golang.org/x/sys/unix for comparisons.
var (
	EAGAIN       = unix.EAGAIN
	EINVAL       = unix.EINVAL
	EPIPE        = unix.EPIPE
	ENXIO        = unix.ENXIO
	ENODEV       = unix.ENODEV // a virtio port hot-unplugged under its reader or writer
	ECONNREFUSED = unix.ECONNREFUSED
	ENOSPC       = unix.ENOSPC
	EBUSY        = unix.EBUSY // tracefs: an instance with a file still open
	EPERM        = unix.EPERM // tracefs: a file the kernel's policy refuses
)

// retry calls f again while it fails with EINTR (a signal came first).
func retry[T any](f func() (T, error)) (T, error) {
	for {
		v, err := f()
		if !errors.Is(err, unix.EINTR) {
			return v, err
		}
	}
}

// retryErr is retry for a call that returns only an error.
func retryErr(f func() error) error {
	_, err := retry(func() (struct{}, error) { return struct{}{}, f() })
	return err
}
