package testutil

import "sync"

var (
	buildOnce sync.Once
	builtBin  string
	buildErr  error
)

type buildError struct {
	err error
	out string
}

func (e *buildError) Error() string { return e.err.Error() + ": " + e.out }
