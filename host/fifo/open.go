package fifo

import (
	"fmt"
	"io/fs"

	"github.com/vtrace/vtrace/internal/sys"
)

// Open opens the channel FIFO at path with flags (sys.FIFOReadNonblock or
// sys.FIFOWriteNonblock; O_CLOEXEC is added) and checks, on the open
// descriptor, that it is a FIFO: a regular file or a device put in its
// place is refused. An error of the open itself is returned as it is, so
// that errors.Is finds ENOENT or ENXIO. The caller owns the descriptor.
func Open(path string, flags int) (int, error) {
	fd, err := sys.Open(path, flags, 0)
	if err != nil {
		return -1, err
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
