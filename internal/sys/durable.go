package sys

import (
	"errors"
	"os"

	"golang.org/x/sys/unix"
)

// SyncDir fsyncs the directory dir, so that the entries made, renamed or
// removed in it survive a crash: an fsync of a file does not make its name
// durable.
func SyncDir(dir string) error {
	fd, err := Open(dir, unix.O_RDONLY|unix.O_DIRECTORY, 0)
	if err != nil {
		return err
	}
	defer Close(fd)
	if err := Fsync(fd); err != nil {
		return &os.PathError{Op: "fsync", Path: dir, Err: errors.Unwrap(err)}
	}
	return nil
}

// SyncFS flushes the whole filesystem that holds path (syncfs(2)): the
// data and the directory entries of every file written there. It is one
// call where a tree of thousands of small files would need an fsync each.
func SyncFS(path string) error {
	fd, err := Open(path, unix.O_RDONLY, 0)
	if err != nil {
		return err
	}
	defer Close(fd)
	if err := retryErr(func() error { return unix.Syncfs(fd) }); err != nil {
		return &os.PathError{Op: "syncfs", Path: path, Err: err}
	}
	return nil
}

// Fsync flushes fd to stable storage.
func Fsync(fd int) error {
	return os.NewSyscallError("fsync", retryErr(func() error { return unix.Fsync(fd) }))
}

// Ftruncate sets the size of fd.
func Ftruncate(fd int, size int64) error {
	if err := unix.Ftruncate(fd, size); err != nil {
		return os.NewSyscallError("ftruncate", err)
	}
	return nil
}
