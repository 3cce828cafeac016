// Package sys is the one place where vtrace talks to the kernel through
// golang.org/x/sys/unix. Each file holds one kind of call: fd.go (open,
// close, read, write), pipe.go (pipes and splice), poll.go (poll and the
// Waker that interrupts it), affinity.go, at.go (the *at calls that never
// follow a symlink), durable.go (fsync, syncfs), fifo.go, flock.go,
// memory.go (memfd, page size), copy.go (copy_file_range), uname.go and
// term.go.
//
// Every wrapper retries on EINTR and reports failures as *os.SyscallError
// or *os.PathError, so callers compare with errors.Is(err, sys.EAGAIN) and
// friends. The hot paths of both the guest agent and the host collector are
// built from these few functions; keep them small and allocation-free.
//
// Lifecycle: fds returned here are owned by the caller, who closes them
// with Close. A Waker is the way to interrupt a goroutine blocked in Poll:
// Close on its own does not wake a poll(2) sleeping on a raw fd.
package sys

import "golang.org/x/sys/unix"

// Errno values, re-exported so packages outside internal/sys need not
// import golang.org/x/sys/unix for comparisons.
var (
	EAGAIN = unix.EAGAIN
	EINVAL = unix.EINVAL
	EPIPE  = unix.EPIPE
	ENXIO  = unix.ENXIO
	ENOSPC = unix.ENOSPC
	EBUSY  = unix.EBUSY // tracefs: an instance with a file still open
)
