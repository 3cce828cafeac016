package meta

import (
	"fmt"
	"os"
	"path/filepath"

	"github.com/vtrace/vtrace/internal/sys"
)

// Gather copies the metadata of a local tracefs (its root or an instance
// directory) into destDir, in the layout Load reads. The files only the
// tracefs root has (printk_formats, saved_cmdlines, saved_tgids) are taken
// from the root when tracefsDir is an instance. On a live tracefs (one with
// tracing_on) it adds /proc/kallsyms and the machine's uname.
func Gather(tracefsDir, destDir string) error {
	s, err := FromTracefs(tracefsDir)
	if err != nil {
		return err
	}
	return Save(s, destDir)
}

// FromTracefs is Gather without the copy: the Set of a local tracefs.
func FromTracefs(tracefsDir string) (*Set, error) {
	s, err := Load(tracefsDir)
	if err != nil {
		return nil, err
	}
	if filepath.Base(filepath.Dir(filepath.Clean(tracefsDir))) == "instances" {
		root := filepath.Dir(filepath.Dir(filepath.Clean(tracefsDir)))
		for _, f := range s.files() {
			if !f.root || *f.p != nil {
				continue
			}
			if *f.p, err = readOptional(filepath.Join(root, f.name), f.limit); err != nil {
				return nil, fmt.Errorf("gather metadata: %w", err)
			}
		}
	}
	if _, err := os.Stat(filepath.Join(tracefsDir, "tracing_on")); err == nil {
		if s.Kallsyms == nil {
			if s.Kallsyms, err = readOptional("/proc/kallsyms", MaxKallsyms); err != nil {
				return nil, fmt.Errorf("gather metadata: %w", err)
			}
		}
		if s.Uname == "" {
			if s.Uname, err = sys.Uname(); err != nil {
				return nil, fmt.Errorf("gather metadata: %w", err)
			}
		}
	}
	if err := s.Validate(); err != nil {
		return nil, fmt.Errorf("gather metadata from %s: %w", tracefsDir, err)
	}
	return s, nil
}
