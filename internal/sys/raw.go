package sys

import (
	"os"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"
)

// The calls below enter the kernel without telling the Go scheduler
// (syscall.RawSyscall6): the goroutine keeps its P through the call, so
// nothing is spent handing Ps over (entersyscall, exitsyscall) and the
// runtime's monitor thread (sysmon) finds no P to retake from a system
// call. They are for a goroutine that makes short calls back to back: a
// call that cannot block, or a wait bounded by a timeout. While one runs,
// a stop of the world (a garbage collection's) waits for it to return, no
// other goroutine runs on that P, and to sysmon the goroutine is running:
// it preempts one that has not yielded for 10 ms (runtime/proc.go, retake).

// SpliceRaw is Splice for a call that does not block (SPLICE_F_NONBLOCK,
// both ends non-blocking), made without the scheduler. It returns 0, nil
// at end of input, and EAGAIN itself, unwrapped and without an
// allocation, when nothing moves: on the hot path that is every wait's
// last splice.
func SpliceRaw(in, out, n, flags int) (int, error) {
	for {
		r, _, e := unix.RawSyscall6(unix.SYS_SPLICE, uintptr(in), 0, uintptr(out), 0, uintptr(n), uintptr(flags))
		switch e {
		case 0:
			return int(r), nil
		case unix.EINTR:
			continue
		case unix.EAGAIN:
			return 0, EAGAIN
		}
		return 0, os.NewSyscallError("splice", e)
	}
}

// PollInOutRaw is PollInOut bounded by timeout (0 or more), made without
// the scheduler. A signal that interrupts it (the runtime preempts a
// goroutine that has run for 10 ms by signalling its thread) ends it as
// Interrupted: the caller looks at its orders and waits again, without
// reading the Waker (which may not have fired).
func PollInOutRaw(in, out int, w *Waker, timeout time.Duration) (Event, error) {
	fds := [3]unix.PollFd{{Fd: int32(in), Events: In}, {Fd: int32(out), Events: Out}, {Fd: -1}}
	if w != nil {
		fds[2] = unix.PollFd{Fd: int32(w.fd), Events: unix.POLLIN}
	}
	ts := unix.NsecToTimespec(int64(max(timeout, 0)))
	n, _, e := unix.RawSyscall6(unix.SYS_PPOLL, uintptr(unsafe.Pointer(&fds[0])), uintptr(len(fds)),
		uintptr(unsafe.Pointer(&ts)), 0, 0, 0)
	switch {
	case e == unix.EINTR:
		return Interrupted, nil
	case e != 0:
		return 0, os.NewSyscallError("ppoll", e)
	case n == 0:
		return Timeout, nil
	case fds[2].Revents != 0:
		return Woken, nil
	}
	return Ready, nil
}
