package sys

import (
	"errors"
	"os"

	"golang.org/x/sys/unix"
)

// TryLock takes an exclusive flock(2) on fd without waiting. It reports
// false when another open file description holds the lock. The lock goes
// with the last close of fd.
func TryLock(fd int) (bool, error) {
	err := retryErr(func() error { return unix.Flock(fd, unix.LOCK_EX|unix.LOCK_NB) })
	switch {
	case errors.Is(err, unix.EWOULDBLOCK):
		return false, nil
	case err != nil:
		return false, os.NewSyscallError("flock", err)
	}
	return true, nil
}
