package sys

import (
	"errors"
	"os"
	"strconv"

	"golang.org/x/sys/unix"
)

// openPathNoFollow opens the entry name of dirfd with O_PATH, refusing a
// symlink, for the calls Linux offers only by path.
func openPathNoFollow(dirfd int, name string) (int, error) {
	fd, err := unix.Openat(dirfd, name, unix.O_PATH|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
	if err != nil {
		return -1, &os.PathError{Op: "openat", Path: name, Err: err}
	}
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil {
		unix.Close(fd)
		return -1, &os.PathError{Op: "fstat", Path: name, Err: err}
	}
	if st.Mode&unix.S_IFMT == unix.S_IFLNK {
		unix.Close(fd)
		return -1, &os.PathError{Op: "openat", Path: name, Err: unix.ELOOP}
	}
	return fd, nil
}

// GetxattrNoFollow returns the extended attribute attr of the entry name of
// dirfd (at most 64 KiB, the kernel's limit), refusing to act through a
// symlink. A missing attribute is an error that IsNoXattr recognizes.
func GetxattrNoFollow(dirfd int, name, attr string) ([]byte, error) {
	fd, err := openPathNoFollow(dirfd, name)
	if err != nil {
		return nil, err
	}
	defer unix.Close(fd)
	buf := make([]byte, 1<<16)
	n, err := unix.Getxattr("/proc/self/fd/"+strconv.Itoa(fd), attr, buf)
	if err != nil {
		return nil, &os.PathError{Op: "getxattr " + attr, Path: name, Err: err}
	}
	return buf[:n], nil
}

// SetxattrNoFollow sets the extended attribute attr of the entry name of
// dirfd, refusing to act through a symlink: the entry is opened with
// O_PATH|O_NOFOLLOW and changed through /proc/self/fd.
func SetxattrNoFollow(dirfd int, name, attr string, value []byte) error {
	fd, err := openPathNoFollow(dirfd, name)
	if err != nil {
		return err
	}
	defer unix.Close(fd)
	if err := unix.Setxattr("/proc/self/fd/"+strconv.Itoa(fd), attr, value, 0); err != nil {
		return &os.PathError{Op: "setxattr " + attr, Path: name, Err: err}
	}
	return nil
}

// IsNoXattr reports whether err says the attribute is not set.
func IsNoXattr(err error) bool { return errors.Is(err, unix.ENODATA) }

// IsNotSupported reports whether err says the file system does not support
// the operation (extended attributes, POSIX ACLs).
func IsNotSupported(err error) bool { return errors.Is(err, unix.EOPNOTSUPP) }
