package sys

import (
	"errors"
	"os"
	"time"

	"golang.org/x/sys/unix"
)

// Open flags the guest agent uses (O_CLOEXEC is always added by Open).
const (
	ORdonly   = unix.O_RDONLY
	ORdwr     = unix.O_RDWR
	OWronly   = unix.O_WRONLY
	ONonblock = unix.O_NONBLOCK
)

// Poll2 waits until a is ready for dirA or b for dirB, w is woken, or
// timeout passes (negative: no timeout). A negative fd is ignored, as poll(2)
// does. It reports what happened and the revents of a and b; as with Poll,
// Woken wins over Ready.
func Poll2(a int, dirA int16, b int, dirB int16, w *Waker, timeout time.Duration) (Event, int16, int16, error) {
	fds := []unix.PollFd{{Fd: int32(a), Events: dirA}, {Fd: int32(b), Events: dirB}}
	if w != nil {
		fds = append(fds, unix.PollFd{Fd: int32(w.fd), Events: unix.POLLIN})
	}
	deadline := time.Now().Add(timeout)
	for {
		ms := -1
		if timeout >= 0 {
			left := time.Until(deadline)
			if left < 0 {
				left = 0
			}
			ms = int((left + time.Millisecond - 1) / time.Millisecond)
		}
		n, err := unix.Poll(fds, ms)
		if errors.Is(err, unix.EINTR) {
			continue
		}
		if err != nil {
			return 0, 0, 0, os.NewSyscallError("poll", err)
		}
		if n == 0 {
			return Timeout, 0, 0, nil
		}
		if w != nil && fds[2].Revents != 0 {
			return Woken, fds[0].Revents, fds[1].Revents, nil
		}
		return Ready, fds[0].Revents, fds[1].Revents, nil
	}
}
