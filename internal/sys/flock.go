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

// FileID is where a file lives, as /proc/locks names it
// ("MAJOR:MINOR:INODE", the device's numbers in hex).
type FileID struct {
	Major, Minor uint32
	Ino          uint64
}

// FileIDOf returns the FileID of the file open at fd.
func FileIDOf(fd int) (FileID, error) {
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil {
		return FileID{}, os.NewSyscallError("fstat", err)
	}
	return FileID{Major: unix.Major(st.Dev), Minor: unix.Minor(st.Dev), Ino: st.Ino}, nil
}
