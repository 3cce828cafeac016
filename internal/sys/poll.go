package sys

import (
	"errors"
	"os"
	"time"

	"golang.org/x/sys/unix"
)

// Waker is an eventfd that interrupts Poll. Any goroutine may call Wake;
// the owner of the poll loop calls Clear after it has seen the wake-up.
type Waker struct{ fd int }

// NewWaker makes a non-blocking, close-on-exec eventfd.
func NewWaker() (*Waker, error) {
	fd, err := unix.Eventfd(0, unix.EFD_CLOEXEC|unix.EFD_NONBLOCK)
	if err != nil {
		return nil, os.NewSyscallError("eventfd", err)
	}
	return &Waker{fd: fd}, nil
}

// Wake makes every current and future Poll on w return until Clear.
func (w *Waker) Wake() {
	var one = [8]byte{1}
	// EAGAIN means the counter is already non-zero: still woken.
	retry(func() (int, error) { return unix.Write(w.fd, one[:]) })
}

// Clear resets the wake-up.
func (w *Waker) Clear() {
	var buf [8]byte
	retry(func() (int, error) { return unix.Read(w.fd, buf[:]) })
}

// Close releases the eventfd. A nil Waker has nothing to release.
func (w *Waker) Close() error {
	if w == nil {
		return nil
	}
	return Close(w.fd)
}

// Event is what Poll found.
type Event int

const (
	// Ready: an fd is ready for the requested direction (or has an error or
	// hang-up the next syscall on it will report).
	Ready Event = iota
	// Woken: the Waker fired.
	Woken
	// Timeout: the timeout passed first.
	Timeout
	// Interrupted: a signal ended the wait (PollInOutRaw only); the
	// Waker may or may not have fired.
	Interrupted
)

// Poll directions.
const (
	In  = unix.POLLIN
	Out = unix.POLLOUT
)

// Poll waits until fd is ready for dir (In or Out), w is woken, or timeout
// passes (negative: no timeout), and returns fd's revents. If both fd and
// w are ready, Woken wins so that orders are never starved by a busy
// stream. w may be nil.
func Poll(fd int, dir int16, w *Waker, timeout time.Duration) (Event, int16, error) {
	fds := [2]unix.PollFd{{Fd: int32(fd), Events: dir}}
	ev, err := poll(fds[:], w, timeout)
	return ev, fds[0].Revents, err
}

// PollInOut waits until in is readable or out is writable, w is woken, or
// timeout passes (negative: no timeout); Woken wins as in Poll. A negative
// fd is not waited for, as in poll(2): PollInOut(-1, -1, w, d) waits for w
// or d alone.
func PollInOut(in, out int, w *Waker, timeout time.Duration) (Event, error) {
	fds := [3]unix.PollFd{{Fd: int32(in), Events: In}, {Fd: int32(out), Events: Out}}
	return poll(fds[:], w, timeout)
}

// poll waits on fds, whose last entry it fills with w's eventfd (or -1),
// retrying on EINTR until the deadline.
func poll(fds []unix.PollFd, w *Waker, timeout time.Duration) (Event, error) {
	last := &fds[len(fds)-1]
	*last = unix.PollFd{Fd: -1}
	if w != nil {
		*last = unix.PollFd{Fd: int32(w.fd), Events: unix.POLLIN}
	}
	deadline := time.Now().Add(timeout)
	for {
		ms := -1
		if timeout >= 0 {
			ms = int((max(time.Until(deadline), 0) + time.Millisecond - 1) / time.Millisecond)
		}
		n, err := unix.Poll(fds, ms)
		switch {
		case errors.Is(err, unix.EINTR):
			continue
		case err != nil:
			return 0, os.NewSyscallError("poll", err)
		case n == 0:
			return Timeout, nil
		case last.Revents != 0:
			return Woken, nil
		}
		return Ready, nil
	}
}

// PollPair waits until a has one of aEvents or b has one of bEvents
// (POLLERR and POLLHUP are always reported), or timeout passes (negative:
// no timeout), and returns both revents (zero on a timeout).
func PollPair(a int, aEvents int16, b int, bEvents int16, timeout time.Duration) (ra, rb int16, err error) {
	fds := [3]unix.PollFd{{Fd: int32(a), Events: aEvents}, {Fd: int32(b), Events: bEvents}}
	if _, err := poll(fds[:], nil, timeout); err != nil {
		return 0, 0, err
	}
	return fds[0].Revents, fds[1].Revents, nil
}

// Err is the poll revents bit of an error on the descriptor: for the
// write end of a pipe, that its read end is closed.
const Err = unix.POLLERR
