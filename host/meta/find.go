package meta

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
)

// ForCapture finds the metadata of a capture directory. With metaDir
// empty it loads captureDir/meta. Otherwise metaDir may be a directory
// holding meta/ (another capture), a metadata directory, a copy of a
// guest's /sys/kernel/tracing, or a live tracefs (root or instance),
// gathered as Gather does. It returns the Set and the directory it came
// from. An error wraps ErrNoMeta when there is none.
func ForCapture(captureDir, metaDir string) (*Set, string, error) {
	if metaDir == "" {
		dir := filepath.Join(captureDir, "meta")
		s, err := Load(dir)
		if errors.Is(err, ErrNoMeta) {
			return nil, "", fmt.Errorf("capture %s has no metadata (%s/events/header_page is missing): "+
				"give --meta DIR, a copy of the guest's /sys/kernel/tracing or a metadata directory: %w",
				captureDir, dir, ErrNoMeta)
		}
		return s, dir, err
	}
	if _, err := os.Stat(filepath.Join(metaDir, "meta", "events", "header_page")); err == nil {
		dir := filepath.Join(metaDir, "meta")
		s, err := Load(dir)
		return s, dir, err
	}
	if _, err := os.Stat(filepath.Join(metaDir, "tracing_on")); err == nil {
		s, err := FromTracefs(metaDir)
		return s, metaDir, err
	}
	s, err := Load(metaDir)
	return s, metaDir, err
}
