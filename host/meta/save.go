package meta

import (
	"fmt"
	"os"
	"path/filepath"
	"strconv"

	"github.com/vtrace/vtrace/internal/sys"
)

// Save writes s under dir in the layout Load reads, and makes it durable
// before it returns. It validates s first, so no name in s can lead
// outside dir.
func Save(s *Set, dir string) error {
	if err := s.Validate(); err != nil {
		return fmt.Errorf("save metadata: %w", err)
	}
	write := func(rel string, b []byte) error {
		p := filepath.Join(dir, rel)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			return fmt.Errorf("save metadata: %w", err)
		}
		if err := os.WriteFile(p, b, 0o644); err != nil {
			return fmt.Errorf("save metadata: %w", err)
		}
		return nil
	}
	if err := write("events/header_page", s.HeaderPage); err != nil {
		return err
	}
	if err := write("events/header_event", s.HeaderEvent); err != nil {
		return err
	}
	for sys, evs := range s.Formats {
		for ev, text := range evs {
			if err := write(filepath.Join("events", sys, ev, "format"), text); err != nil {
				return err
			}
		}
	}
	for _, f := range s.files() {
		if *f.p == nil {
			continue
		}
		if err := write(f.name, *f.p); err != nil {
			return err
		}
	}
	for _, l := range s.lines() {
		if *l.p == "" {
			continue
		}
		if err := write(l.name, []byte(*l.p+"\n")); err != nil {
			return err
		}
	}
	for cpu, b := range s.CPUStats {
		if err := write(filepath.Join("cpustats", "cpu"+strconv.Itoa(cpu)), b); err != nil {
			return err
		}
	}
	// One syncfs makes every file and directory entry written above
	// durable, dir's own entry in its parent included; an fsync of each of
	// the thousands of formats and their directories costs seconds.
	if err := sys.SyncFS(dir); err != nil {
		return fmt.Errorf("save metadata: %w", err)
	}
	return nil
}
