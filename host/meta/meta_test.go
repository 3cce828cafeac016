package meta

import (
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/vtrace/vtrace/internal/testutil"
)

const fixture = "testdata/tracefs" // a trimmed copy of a real tracefs

func TestLoadTracefsTree(t *testing.T) {
	s := mustLoad(t, fixture)
	ev, err := s.Events()
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]bool{}
	for _, e := range ev {
		got[e.String()] = true
	}
	want := map[string]bool{"sched:sched_switch": true, "sched:sched_wakeup": true,
		"irq:irq_handler_entry": true, "ftrace:print": true, "ftrace:function": true}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("events (-want +got):\n%s", diff)
	}
	if c := s.SelectedClock(); c != "local" {
		t.Errorf("selected clock %q, want local", c)
	}
	if len(s.CPUStats) != 2 || !strings.Contains(string(s.CPUStats[1]), "read events:") {
		t.Errorf("cpu stats from per_cpu/cpuN/stats: %v", s.CPUStats)
	}
	if diff := cmp.Diff([]string{"ftrace", "irq", "sched"}, s.Systems()); diff != "" {
		t.Errorf("systems in trace.dat order (-want +got):\n%s", diff)
	}
}

func TestSaveLoadRoundTrip(t *testing.T) {
	s := mustLoad(t, fixture)
	s.Kallsyms = []byte("ffffffff81000000 T _text\n")
	s.Tgids = []byte("42 42\n")
	dir := t.TempDir()
	if err := Save(s, dir); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(dir, "cpustats", "cpu1")); err != nil {
		t.Errorf("Save wrote no cpustats/cpu1: %v", err)
	}
	back := mustLoad(t, dir)
	if diff := cmp.Diff(s, back); diff != "" {
		t.Errorf("round trip differs (-saved +loaded):\n%s", diff)
	}
}

// copyFixture copies the fixture tree so a test can spoil it.
func copyFixture(t *testing.T) string {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "meta")
	if out, err := exec.Command("cp", "-r", fixture, dir).CombinedOutput(); err != nil {
		t.Fatalf("copy fixture: %v %s", err, out)
	}
	return dir
}

func TestLoadRejectsHostileMetadata(t *testing.T) {
	ev := func(dir string, rel ...string) string {
		return filepath.Join(append([]string{dir, "events"}, rel...)...)
	}
	write := func(p string, b []byte) {
		os.MkdirAll(filepath.Dir(p), 0o755)
		if err := os.WriteFile(p, b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	switchFormat, err := os.ReadFile(ev(fixture, "sched", "sched_switch", "format"))
	if err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		name  string
		spoil func(dir string)
		want  string
	}{
		{"no header_page", func(d string) { os.Remove(ev(d, "header_page")) }, "header_page missing"},
		{"garbage header_page", func(d string) { write(ev(d, "header_page"), []byte("\x00\xffgarbage")) }, "header_page"},
		{"oversized format", func(d string) {
			write(ev(d, "sched", "sched_switch", "format"), append(switchFormat, make([]byte, MaxFormat)...))
		}, "larger than the limit"},
		{"garbage format", func(d string) { write(ev(d, "sched", "sched_switch", "format"), []byte("\x7fELF\x02\x01")) }, "no name line"},
		{"format without id", func(d string) {
			write(ev(d, "sched", "sched_switch", "format"), []byte("name: sched_switch\nformat:\n"))
		}, "no ID line"},
		{"id out of range", func(d string) {
			write(ev(d, "sched", "sched_switch", "format"), []byte("name: sched_switch\nID: 70000\nformat:\n"))
		}, "not in [1, 65535]"},
		{"name differs from directory", func(d string) {
			write(ev(d, "sched", "other", "format"), switchFormat)
		}, `names event "sched_switch"`},
		{"duplicate id", func(d string) {
			write(ev(d, "sched", "sched_switch2", "format"),
				[]byte(strings.Replace(string(switchFormat), "name: sched_switch", "name: sched_switch2", 1)))
		}, "reuses id"},
		{"bad system name", func(d string) { write(ev(d, "sch ed", "x", "format"), switchFormat) }, "invalid system name"},
		{"bad event name", func(d string) { write(ev(d, "sched", "a$b", "format"), switchFormat) }, "invalid event name"},
		{"symlinked format", func(d string) {
			p := ev(d, "sched", "sched_switch", "format")
			os.Remove(p)
			os.Symlink("/etc/passwd", p)
		}, "not a regular file"},
		{"fifo kallsyms", func(d string) {
			if err := syscall.Mkfifo(filepath.Join(d, "kallsyms"), 0o644); err != nil {
				t.Fatal(err)
			}
		}, "not a regular file"},
		{"oversized kallsyms", func(d string) {
			f, err := os.Create(filepath.Join(d, "kallsyms"))
			if err != nil {
				t.Fatal(err)
			}
			f.Truncate(MaxKallsyms + 1)
			f.Close()
		}, "larger than the limit"},
		{"control bytes in uname", func(d string) { write(filepath.Join(d, "uname"), []byte("Linux\x1b[2J")) }, "control byte"},
		{"oversized cpu stats", func(d string) {
			write(filepath.Join(d, "cpustats", "cpu7"), make([]byte, MaxCPUStat+1))
		}, "larger than the limit"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			dir := copyFixture(t)
			c.spoil(dir)
			s, err := Load(dir)
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("Load: got %v (set %v), want an error containing %q", err, s != nil, c.want)
			}
		})
	}
	if _, err := Load(t.TempDir()); !errors.Is(err, ErrNoMeta) {
		t.Errorf("Load of an empty directory: %v, want ErrNoMeta", err)
	}
}

func TestSaveRefusesBadNames(t *testing.T) {
	s := mustLoad(t, fixture)
	s.Formats["../../escape"] = map[string][]byte{"x": []byte("name: x\nID: 999\nformat:\n")}
	dir := t.TempDir()
	if err := Save(s, filepath.Join(dir, "meta")); err == nil || !strings.Contains(err.Error(), "invalid system name") {
		t.Fatalf("Save: %v, want invalid system name", err)
	}
	if ents, _ := os.ReadDir(dir); len(ents) != 0 {
		t.Errorf("Save wrote %v after refusing", ents)
	}
}

func TestIntegrationGatherInstance(t *testing.T) {
	inst := testutil.Instance(t, "vtrace-meta-gather")
	dir := filepath.Join(t.TempDir(), "meta")
	if err := Gather(inst, dir); err != nil {
		t.Fatal(err)
	}
	s := mustLoad(t, dir)
	ev, err := s.Events()
	if err != nil {
		t.Fatal(err)
	}
	found := false
	for _, e := range ev {
		found = found || e.String() == "sched:sched_switch"
	}
	switch {
	case !found:
		t.Errorf("no sched:sched_switch among %d events", len(ev))
	case len(s.PrintkFormats) == 0:
		t.Errorf("printk_formats not taken from the tracefs root")
	case !strings.Contains(string(s.Kallsyms), " T "):
		t.Errorf("kallsyms missing or without text symbols")
	case s.Uname == "" || s.SelectedClock() == "":
		t.Errorf("uname %q, clock %q", s.Uname, s.Clock)
	case len(s.CPUStats) == 0:
		t.Errorf("no per-CPU stats")
	}
}

// mustLoad is Load failing the test on an error.
func mustLoad(t *testing.T, dir string) *Set {
	t.Helper()
	s, err := Load(dir)
	if err != nil {
		t.Fatal(err)
	}
	return s
}
