package collect

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
)

// ErrExists is returned (wrapped) when Out holds a capture and Force is off.
var ErrExists = errors.New("capture already exists")

// prepareOut makes the capture directory, refusing to mix with or replace
// an earlier capture unless force is set, in which case its files go.
func prepareOut(out string, force bool) error {
	if out == "" {
		return errors.New("check output directory: none given")
	}
	if err := os.MkdirAll(out, 0o750); err != nil {
		return fmt.Errorf("make output directory: %w", err)
	}
	ents, err := os.ReadDir(out)
	if err != nil {
		return fmt.Errorf("read output directory: %w", err)
	}
	var old []string
	for _, e := range ents {
		if isFileName(e.Name()) || e.Name() == MetaDir || e.Name() == TraceDat || isTimelineName(e.Name()) {
			old = append(old, e.Name())
		}
	}
	if len(old) == 0 {
		return nil
	}
	if !force {
		return fmt.Errorf("check output directory %s: %w (%s)", out, ErrExists, strings.Join(old, ", "))
	}
	for _, name := range old {
		// RemoveAll does not follow a symlink named meta: it removes the link.
		if err := os.RemoveAll(filepath.Join(out, name)); err != nil {
			return fmt.Errorf("replace the earlier capture: %w", err)
		}
	}
	return nil
}
