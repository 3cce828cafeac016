package cli

import (
	"errors"
	"fmt"
)

// UsageError marks an error in the command line: an unknown command or
// flag, a bad flag value, a wrong number of arguments. Both binaries exit
// with code 2 for it and 1 for any other error.
type UsageError struct{ Err error }

func (e UsageError) Error() string { return e.Err.Error() }
func (e UsageError) Unwrap() error { return e.Err }

// Usagef is fmt.Errorf as a UsageError.
func Usagef(format string, args ...any) error {
	return UsageError{fmt.Errorf(format, args...)}
}

// IsUsage reports whether err's chain holds a UsageError.
func IsUsage(err error) bool {
	var u UsageError
	return errors.As(err, &u)
}
