package meta

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/vtrace/vtrace/proto/wire"
)

func fixtureFormats(f *testing.F) [][]byte {
	var out [][]byte
	paths, _ := filepath.Glob(filepath.Join(fixture, "events", "*", "*", "format"))
	for _, p := range paths {
		b, err := os.ReadFile(p)
		if err != nil {
			f.Fatal(err)
		}
		out = append(out, b)
	}
	return out
}

func FuzzParseFormat(f *testing.F) {
	for _, b := range fixtureFormats(f) {
		f.Add(b)
	}
	f.Add([]byte("name: x\nID: 65535\nformat:\n"))
	f.Fuzz(func(t *testing.T, text []byte) {
		fm, err := ParseFormat(text)
		if err != nil {
			return
		}
		if !wire.ValidName(fm.Name) || fm.ID == 0 {
			t.Fatalf("accepted %+v", fm)
		}
	})
}

// FuzzSet feeds guest-controlled bytes into a Set as the control protocol
// would: Validate must never panic, and whatever it accepts must survive
// Save and Load unchanged, inside the directory.
func FuzzSet(f *testing.F) {
	hp, _ := os.ReadFile(filepath.Join(fixture, "events", "header_page"))
	for _, b := range fixtureFormats(f) {
		f.Add(hp, "sched", "sched_switch", b, "[local] global", []byte("entries: 0\n"))
	}
	f.Add(hp, "..", "x", []byte("name: x\nID: 1\nformat:\n"), "", []byte(nil))
	f.Fuzz(func(t *testing.T, headerPage []byte, system, event string, format []byte, clock string, stats []byte) {
		s := &Set{
			HeaderPage:  headerPage,
			HeaderEvent: []byte("# compressed entry header\n"),
			Formats:     map[string]map[string][]byte{system: {event: format}},
			Clock:       clock,
			CPUStats:    map[int][]byte{0: stats},
		}
		if s.Validate() != nil {
			return
		}
		dir := t.TempDir()
		if err := Save(s, filepath.Join(dir, "m")); err != nil {
			t.Fatalf("Save of a valid set: %v", err)
		}
		back, err := Load(filepath.Join(dir, "m"))
		if err != nil {
			t.Fatalf("Load of a saved set: %v", err)
		}
		if diff := cmp.Diff(s.Formats, back.Formats); back.Clock != strings.TrimSpace(s.Clock) || diff != "" {
			t.Fatalf("round trip differs: clock %q, saved %q; formats (-saved +loaded):\n%s", back.Clock, s.Clock, diff)
		}
		if ents, _ := os.ReadDir(dir); len(ents) != 1 {
			t.Fatalf("Save wrote outside its directory: %v", ents)
		}
	})
}
