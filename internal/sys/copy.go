package sys

import (
	"errors"
	"os"

	"golang.org/x/sys/unix"
)

// CopyFileRange copies up to n bytes from in at *inOff to out at *outOff
// inside the kernel, advancing both offsets. It returns 0, nil at the end
// of in. ErrCopyUnsupported wraps the errnos that mean "this pair of files
// cannot do it; copy through user space instead".
func CopyFileRange(in int, inOff *int64, out int, outOff *int64, n int) (int, error) {
	m, err := retry(func() (int, error) { return unix.CopyFileRange(in, inOff, out, outOff, n, 0) })
	if err != nil {
		serr := os.NewSyscallError("copy_file_range", err)
		if errors.Is(err, unix.EXDEV) || errors.Is(err, unix.EINVAL) ||
			errors.Is(err, unix.ENOSYS) || errors.Is(err, unix.EOPNOTSUPP) {
			return 0, &copyUnsupportedError{serr}
		}
		return 0, serr
	}
	return m, nil
}

// ErrCopyUnsupported is matched (errors.Is) by a CopyFileRange failure that
// calls for a fallback to read and write.
var ErrCopyUnsupported = errors.New("copy_file_range unsupported")

type copyUnsupportedError struct{ err error }

func (e *copyUnsupportedError) Error() string        { return e.err.Error() }
func (e *copyUnsupportedError) Unwrap() error        { return e.err }
func (e *copyUnsupportedError) Is(target error) bool { return target == ErrCopyUnsupported }
