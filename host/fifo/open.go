package fifo

import (
	"errors"
	"fmt"
	"io/fs"

	"github.com/vtrace/vtrace/internal/sys"
)

// Open opens the channel at path, as ReadPath or WritePath name it: a unix
// socket is connected to, and with sys.FIFOReadNonblock read through a
// pipe that a goroutine fills from it (a reader of a data channel splices
// into files and counts what is buffered as on a FIFO), with
// sys.FIFOWriteNonblock returned itself (non-blocking, both directions:
// the control channel); a FIFO is opened with flags (sys.FIFOReadNonblock or
// sys.FIFOWriteNonblock; O_CLOEXEC is added) and checked, on the open
// descriptor, to be a FIFO: a regular file or a device put in its place is
// refused. An error of the open itself is returned so that errors.Is finds
// ENOENT or ENXIO (ErrNotListening for a socket nobody listens on; a
// permission error says what to do). The caller owns the descriptor.
func Open(path string, flags int) (int, error) {
	if isSocket(path) {
		if flags == sys.FIFOReadNonblock {
			return openSocketReader(path)
		}
		return connect(path)
	}
	fd, err := sys.Open(path, flags, 0)
	if err != nil {
		return -1, accessHint(err)
	}
	st, err := sys.FstatFd(fd)
	if err != nil {
		sys.Close(fd)
		return -1, fmt.Errorf("check %s: %w", path, err)
	}
	if st.Mode.Type() != fs.ModeNamedPipe {
		sys.Close(fd)
		return -1, fmt.Errorf("check %s: not a FIFO: run `vtrace host setup <domain>` to make it", path)
	}
	return fd, nil
}

// accessHint adds to a permission error what to do about it; other errors
// are returned as they are.
func accessHint(err error) error {
	if errors.Is(err, fs.ErrPermission) {
		return fmt.Errorf("%w: run as root, or as a member of the group that vtrace host setup --group GROUP "+
			"(or qemu-args --create --group) gave the channels", err)
	}
	return err
}
