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
	for {
		_, err := unix.Write(w.fd, one[:])
		if !errors.Is(err, unix.EINTR) {
			return // EAGAIN means the counter is already non-zero: still woken
		}
	}
}

// Clear resets the wake-up.
func (w *Waker) Clear() {
	var buf [8]byte
	for {
		_, err := unix.Read(w.fd, buf[:])
		if !errors.Is(err, unix.EINTR) {
			return
		}
	}
}

// Close releases the eventfd.
func (w *Waker) Close() error { return Close(w.fd) }

// Event is what Poll found.
type Event int

const (
	// Ready: fd is ready for the requested direction (or has an error or
	// hang-up the next syscall on it will report).
	Ready Event = iota
	// Woken: the Waker fired.
	Woken
	// Timeout: the timeout passed first.
	Timeout
)

// Poll directions.
const (
	In  = unix.POLLIN
	Out = unix.POLLOUT
)

// Poll waits until fd is ready for dir (In or Out), w is woken, or timeout
// passes (negative: no timeout). If both fd and w are ready, Woken wins so
// that orders are never starved by a busy stream. w may be nil.
func Poll(fd int, dir int16, w *Waker, timeout time.Duration) (Event, int16, error) {
	fds := []unix.PollFd{{Fd: int32(fd), Events: dir}}
	if w != nil {
		fds = append(fds, unix.PollFd{Fd: int32(w.fd), Events: unix.POLLIN})
	}
	ms := -1
	if timeout >= 0 {
		ms = int((timeout + time.Millisecond - 1) / time.Millisecond)
	}
	deadline := time.Now().Add(timeout)
	for {
		n, err := unix.Poll(fds, ms)
		if errors.Is(err, unix.EINTR) {
			if timeout >= 0 {
				left := time.Until(deadline)
				if left <= 0 {
					return Timeout, 0, nil
				}
				ms = int((left + time.Millisecond - 1) / time.Millisecond)
			}
			continue
		}
		if err != nil {
			return 0, 0, os.NewSyscallError("poll", err)
		}
		if n == 0 {
			return Timeout, 0, nil
		}
		if w != nil && fds[1].Revents != 0 {
			return Woken, fds[0].Revents, nil
		}
		return Ready, fds[0].Revents, nil
	}
}

// Poll revents bits callers may want to look at.
const (
	PollErr  = unix.POLLERR
	PollHup  = unix.POLLHUP
	PollNval = unix.POLLNVAL
)
