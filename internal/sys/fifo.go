package sys

import (
	"os"

	"golang.org/x/sys/unix"
)

// Open flags for the host ends of channel FIFOs, which must never block.
const (
	// FIFOWriteNonblock opens a FIFO for writing; the open fails with ENXIO
	// while nobody holds the FIFO open for reading.
	FIFOWriteNonblock = unix.O_WRONLY | unix.O_NONBLOCK
	// FIFOReadNonblock opens a FIFO for reading as a reader that is also a
	// writer: the open never blocks and reads never see end of file when the
	// other side closes and reopens.
	FIFOReadNonblock = unix.O_RDWR | unix.O_NONBLOCK
)

// Mkfifo creates a FIFO at path with mode perm (subject to umask).
func Mkfifo(path string, perm uint32) error {
	if err := unix.Mkfifo(path, perm); err != nil {
		return &os.PathError{Op: "mkfifo", Path: path, Err: err}
	}
	return nil
}
