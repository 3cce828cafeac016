package guest

import (
	"errors"
	"fmt"
	"os"
)

// errAborted: the agent gave up a stop (drain timeout, second signal).
var errAborted = errors.New("aborted")

// streamError is a CPU stream's failure, built by opError.
type streamError struct {
	cpu  int
	op   string
	path string // "" when the operation has no file
	err  error  // the errno
}

func (e *streamError) Error() string {
	if e.path == "" {
		return fmt.Sprintf("cpu %d: %s: %v", e.cpu, e.op, e.err)
	}
	return fmt.Sprintf("cpu %d: %s %s: %v", e.cpu, e.op, e.path, e.err)
}

func (e *streamError) Unwrap() error { return e.err }

// opError builds every error of a CPU's stream: the CPU, the operation
// and the file, each said once, and the errno, which errors.Is matches.
// A *os.SyscallError or *os.PathError from internal/sys gives up its errno
// (and its path, when path is ""). A nil err stays nil.
func opError(cpu int, op, path string, err error) error {
	if err == nil {
		return nil
	}
	switch e := err.(type) {
	case *os.SyscallError:
		err = e.Err
	case *os.PathError:
		if path == "" {
			path = e.Path
		}
		err = e.Err
	}
	return &streamError{cpu: cpu, op: op, path: path, err: err}
}
