package sys

import (
	"errors"
	"io/fs"
	"os"
	"strconv"

	"golang.org/x/sys/unix"
)

// The *at wrappers below work relative to a directory fd and never follow a
// symlink in the last component, so a caller that opened a directory with
// OpenDirNoFollow can create, inspect and remove entries in it without a
// path swapped under it redirecting the work elsewhere. Errors are
// *os.PathError naming the entry, so errors.Is(err, fs.ErrNotExist) works.

// OpenDirNoFollow opens the directory path read-only, refusing a symlink in
// its last component (the error wraps ELOOP or ENOTDIR).
func OpenDirNoFollow(path string) (int, error) {
	return Open(path, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_NOFOLLOW, 0)
}

// FileStat is what the *at wrappers report about one directory entry.
type FileStat struct {
	Mode fs.FileMode // type bits and permissions, as in fs.FileInfo
	Uid  int
	Gid  int
}

func fileStat(st *unix.Stat_t) FileStat {
	m := fs.FileMode(st.Mode & 0o777)
	switch st.Mode & unix.S_IFMT {
	case unix.S_IFDIR:
		m |= fs.ModeDir
	case unix.S_IFLNK:
		m |= fs.ModeSymlink
	case unix.S_IFIFO:
		m |= fs.ModeNamedPipe
	case unix.S_IFSOCK:
		m |= fs.ModeSocket
	case unix.S_IFCHR:
		m |= fs.ModeDevice | fs.ModeCharDevice
	case unix.S_IFBLK:
		m |= fs.ModeDevice
	}
	return FileStat{Mode: m, Uid: int(st.Uid), Gid: int(st.Gid)}
}

// FstatFd describes the file open at fd.
func FstatFd(fd int) (FileStat, error) {
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil {
		return FileStat{}, os.NewSyscallError("fstat", err)
	}
	return fileStat(&st), nil
}

// Fstatat describes the entry name of directory dirfd without following a
// symlink.
func Fstatat(dirfd int, name string) (FileStat, error) {
	var st unix.Stat_t
	if err := unix.Fstatat(dirfd, name, &st, unix.AT_SYMLINK_NOFOLLOW); err != nil {
		return FileStat{}, &os.PathError{Op: "fstatat", Path: name, Err: err}
	}
	return fileStat(&st), nil
}

// Mkfifoat creates the FIFO name in directory dirfd with mode perm (subject
// to umask). It fails with EEXIST when anything, a symlink included, is there.
func Mkfifoat(dirfd int, name string, perm uint32) error {
	if err := unix.Mkfifoat(dirfd, name, perm); err != nil {
		return &os.PathError{Op: "mkfifoat", Path: name, Err: err}
	}
	return nil
}

// FchmodFd sets the permissions of the file open at fd.
func FchmodFd(fd int, perm uint32) error {
	if err := unix.Fchmod(fd, perm); err != nil {
		return os.NewSyscallError("fchmod", err)
	}
	return nil
}

// FchownFd sets the owner and group of the file open at fd (-1 keeps one).
func FchownFd(fd, uid, gid int) error {
	if err := unix.Fchown(fd, uid, gid); err != nil {
		return os.NewSyscallError("fchown", err)
	}
	return nil
}

// Fchownat sets the owner and group of the entry name of dirfd (-1 keeps
// one), acting on a symlink itself rather than its target.
func Fchownat(dirfd int, name string, uid, gid int) error {
	if err := unix.Fchownat(dirfd, name, uid, gid, unix.AT_SYMLINK_NOFOLLOW); err != nil {
		return &os.PathError{Op: "fchownat", Path: name, Err: err}
	}
	return nil
}

// FchmodatNoFollow sets the permissions of the entry name of dirfd, refusing
// to act through a symlink. Linux's fchmodat cannot do that by itself, so the
// entry is opened with O_PATH|O_NOFOLLOW and changed through /proc/self/fd.
func FchmodatNoFollow(dirfd int, name string, perm uint32) error {
	fd, err := unix.Openat(dirfd, name, unix.O_PATH|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
	if err != nil {
		return &os.PathError{Op: "openat", Path: name, Err: err}
	}
	defer unix.Close(fd)
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil {
		return &os.PathError{Op: "fstat", Path: name, Err: err}
	}
	if st.Mode&unix.S_IFMT == unix.S_IFLNK {
		return &os.PathError{Op: "fchmodat", Path: name, Err: unix.ELOOP}
	}
	if err := unix.Fchmodat(unix.AT_FDCWD, "/proc/self/fd/"+strconv.Itoa(fd), perm, 0); err != nil {
		return &os.PathError{Op: "fchmodat", Path: name, Err: err}
	}
	return nil
}

// Unlinkat removes the entry name of dirfd; dir selects rmdir semantics.
func Unlinkat(dirfd int, name string, dir bool) error {
	flags := 0
	if dir {
		flags = unix.AT_REMOVEDIR
	}
	if err := retryErr(func() error { return unix.Unlinkat(dirfd, name, flags) }); err != nil {
		return &os.PathError{Op: "unlinkat", Path: name, Err: err}
	}
	return nil
}

// IsDirNotEmpty reports whether err says a directory still has entries.
func IsDirNotEmpty(err error) bool {
	return errors.Is(err, unix.ENOTEMPTY) || errors.Is(err, unix.EEXIST)
}

// IsSymlinkRefused reports whether err is what an O_NOFOLLOW open of a
// symlink returns.
func IsSymlinkRefused(err error) bool {
	return errors.Is(err, unix.ELOOP) || errors.Is(err, unix.ENOTDIR)
}
