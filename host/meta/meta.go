// Package meta is the metadata that makes a capture's raw ring-buffer pages
// readable: the guest's page and event headers, every event format, and the
// optional kallsyms, printk formats, saved cmdlines and tgids, trace clock,
// uname and per-CPU buffer statistics.
//
// A Set is plain data: the control protocol delivers one from the guest,
// Load reads one from a directory, Gather copies one from a local tracefs,
// and Save writes one as OUT/meta. Everything in a Set may come from a
// hostile guest, so Validate (called by Load, Save and the trace.dat
// writer) caps every size and count and accepts only names made of
// [A-Za-z0-9_.-]: no name in a Set can become a path outside its directory.
//
// Directory layout (the same relative paths as in tracefs):
//
//	events/header_page, events/header_event
//	events/SYSTEM/EVENT/format    (the ftrace system included)
//	kallsyms, printk_formats, saved_cmdlines, saved_tgids, trace_clock, uname
//	cpustats/cpuN                 (a tracefs tree's per_cpu/cpuN/stats is read too)
package meta

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"github.com/vtrace/vtrace/internal/sys"
	"github.com/vtrace/vtrace/proto/clip"
	"github.com/vtrace/vtrace/proto/ringbuf"
	"github.com/vtrace/vtrace/proto/tracefs"
	"github.com/vtrace/vtrace/proto/wire"
)

// Bounds on what a Set may hold.
const (
	MaxHeader       = 64 << 10 // header_page, header_event
	MaxFormat       = 64 << 10 // one event's format file
	MaxEvents       = 65535    // event ids are 16 bits
	MaxSystems      = 4096
	MaxKallsyms     = 64 << 20
	MaxPrintk       = 16 << 20
	MaxCmdlines     = 16 << 20 // saved_cmdlines, saved_tgids
	MaxLine         = 4096     // trace_clock, uname
	MaxCPUStat      = 64 << 10 // one per_cpu/cpuN/stats
	MaxFormatsTotal = 64 << 20 // all formats together
)

// ErrNoMeta means a directory holds no metadata (no events/header_page).
var ErrNoMeta = errors.New("no trace metadata")

// Set is a guest's tracing metadata. Only HeaderPage, HeaderEvent and
// Formats are required.
type Set struct {
	HeaderPage    []byte                       // events/header_page
	HeaderEvent   []byte                       // events/header_event
	Formats       map[string]map[string][]byte // system → event → format file
	Kallsyms      []byte                       // /proc/kallsyms
	PrintkFormats []byte                       // printk_formats
	Cmdlines      []byte                       // saved_cmdlines
	Tgids         []byte                       // saved_tgids (kept, not written to trace.dat v6)
	Clock         string                       // trace_clock, e.g. "[local] global counter"
	Uname         string                       // "Linux guest 6.1.0 #1 SMP ... x86_64"
	CPUStats      map[int][]byte               // CPU → per_cpu/cpuN/stats
}

// file is one of a Set's files kept as it is, under the same name in
// tracefs and in a metadata directory, within its bound.
type file struct {
	name  string
	p     *[]byte
	limit int
	root  bool // in tracefs only the root has it, not an instance
}

// files lists s's files kept as they are (kallsyms is /proc/kallsyms on a
// live machine).
func (s *Set) files() []file {
	return []file{
		{"kallsyms", &s.Kallsyms, MaxKallsyms, false},
		{"printk_formats", &s.PrintkFormats, MaxPrintk, true},
		{"saved_cmdlines", &s.Cmdlines, MaxCmdlines, true},
		{"saved_tgids", &s.Tgids, MaxCmdlines, true},
	}
}

// line is one of a Set's one-line files, stored with a newline, read
// without surrounding space, at most MaxLine bytes.
type line struct {
	name string
	p    *string
}

func (s *Set) lines() []line { return []line{{"trace_clock", &s.Clock}, {"uname", &s.Uname}} }

// Event names one event id.
type Event struct{ System, Name string }

func (e Event) String() string { return e.System + ":" + e.Name }

// Validate checks every bound and name and parses every format. Its errors
// name the offending file.
func (s *Set) Validate() error {
	if len(s.HeaderPage) == 0 {
		return fmt.Errorf("check metadata: events/header_page missing: %w", ErrNoMeta)
	}
	if err := capped("events/header_page", len(s.HeaderPage), MaxHeader); err != nil {
		return err
	}
	if _, err := ringbuf.ParseHeaderPage(s.HeaderPage); err != nil {
		return fmt.Errorf("check metadata: events/header_page: %w", err)
	}
	if len(s.HeaderEvent) == 0 {
		return errors.New("check metadata: events/header_event missing")
	}
	if err := capped("events/header_event", len(s.HeaderEvent), MaxHeader); err != nil {
		return err
	}
	if _, err := s.Events(); err != nil {
		return err
	}
	for _, f := range s.files() {
		if err := capped(f.name, len(*f.p), f.limit); err != nil {
			return err
		}
	}
	for _, l := range s.lines() {
		if err := checkLine(l.name, *l.p); err != nil {
			return err
		}
	}
	for cpu, b := range s.CPUStats {
		if cpu < 0 || cpu > tracefs.MaxCPU {
			return fmt.Errorf("check metadata: cpustats for CPU %d out of range [0, %d]", cpu, tracefs.MaxCPU)
		}
		if err := capped(fmt.Sprintf("cpustats/cpu%d", cpu), len(b), MaxCPUStat); err != nil {
			return err
		}
	}
	return nil
}

func capped(name string, n, limit int) error {
	if n > limit {
		return fmt.Errorf("check metadata: %s is %d bytes, more than the limit of %d", name, n, limit)
	}
	return nil
}

func checkLine(name, s string) error {
	if len(s) > MaxLine {
		return fmt.Errorf("check metadata: %s is %d bytes, more than the limit of %d", name, len(s), MaxLine)
	}
	for i := 0; i < len(s); i++ {
		if c := s[i]; c < 0x20 || c == 0x7f {
			return fmt.Errorf("check metadata: %s holds control byte %#x", name, c)
		}
	}
	return nil
}

// Load reads a metadata directory: OUT/meta as Save writes it, or a copy
// of a guest's tracefs (or a live tracefs) with the same relative paths,
// where per_cpu/cpuN/stats stand for cpustats/cpuN. Only regular files and
// directories are read, each within its bound.
func Load(dir string) (*Set, error) {
	s := &Set{Formats: map[string]map[string][]byte{}, CPUStats: map[int][]byte{}}
	var err error
	hp := filepath.Join(dir, "events", "header_page")
	if s.HeaderPage, err = readCapped(hp, MaxHeader); err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return nil, fmt.Errorf("load metadata from %s: events/header_page missing: %w", dir, ErrNoMeta)
		}
		return nil, fmt.Errorf("load metadata: %w", err)
	}
	if s.HeaderEvent, err = readCapped(filepath.Join(dir, "events", "header_event"), MaxHeader); err != nil {
		return nil, fmt.Errorf("load metadata: %w", err)
	}
	if err := loadFormats(s, filepath.Join(dir, "events")); err != nil {
		return nil, err
	}
	for _, f := range s.files() {
		if *f.p, err = readOptional(filepath.Join(dir, f.name), f.limit); err != nil {
			return nil, fmt.Errorf("load metadata: %w", err)
		}
	}
	for _, l := range s.lines() {
		b, err := readOptional(filepath.Join(dir, l.name), MaxLine+1)
		if err != nil {
			return nil, fmt.Errorf("load metadata: %w", err)
		}
		*l.p = strings.TrimSpace(string(b))
	}
	if err := loadCPUStats(s, filepath.Join(dir, "cpustats"), ""); err != nil {
		return nil, err
	}
	if err := loadCPUStats(s, filepath.Join(dir, "per_cpu"), "stats"); err != nil {
		return nil, err
	}
	if err := s.Validate(); err != nil {
		return nil, fmt.Errorf("load metadata from %s: %w", dir, err)
	}
	return s, nil
}

func loadFormats(s *Set, events string) error {
	systems, err := readDirCapped(events, MaxSystems+16)
	if err != nil {
		return fmt.Errorf("load metadata: %w", err)
	}
	n := 0
	for _, sys := range systems {
		if !sys.IsDir() {
			continue // enable, header_page, ...
		}
		if !wire.ValidName(sys.Name()) {
			return fmt.Errorf("load metadata: invalid system name %q in %s", clip.Text(sys.Name(), maxQuoted), events)
		}
		evs, err := readDirCapped(filepath.Join(events, sys.Name()), MaxEvents+16)
		if err != nil {
			return fmt.Errorf("load metadata: %w", err)
		}
		for _, ev := range evs {
			if !ev.IsDir() {
				continue // enable, filter
			}
			if !wire.ValidName(ev.Name()) {
				return fmt.Errorf("load metadata: invalid event name %q in system %s", clip.Text(ev.Name(), maxQuoted), sys.Name())
			}
			if n++; n > MaxEvents {
				return fmt.Errorf("load metadata: more than %d event formats in %s", MaxEvents, events)
			}
			text, err := readCapped(filepath.Join(events, sys.Name(), ev.Name(), "format"), MaxFormat)
			if errors.Is(err, fs.ErrNotExist) {
				continue
			}
			if err != nil {
				return fmt.Errorf("load metadata: %w", err)
			}
			if s.Formats[sys.Name()] == nil {
				s.Formats[sys.Name()] = map[string][]byte{}
			}
			s.Formats[sys.Name()][ev.Name()] = text
		}
	}
	return nil
}

// loadCPUStats reads DIR/cpuN (file "") or DIR/cpuN/FILE.
func loadCPUStats(s *Set, dir, file string) error {
	ents, err := readDirCapped(dir, tracefs.MaxCPU+16)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("load metadata: %w", err)
	}
	for _, e := range ents {
		cpu, ok := tracefs.CPUFromName(e.Name(), "cpu", "")
		if !ok {
			continue
		}
		if _, dup := s.CPUStats[cpu]; dup {
			continue // cpustats/ wins over per_cpu/
		}
		p := filepath.Join(dir, e.Name())
		if file != "" {
			p = filepath.Join(p, file)
		}
		b, err := readOptional(p, MaxCPUStat)
		if err != nil {
			return fmt.Errorf("load metadata: %w", err)
		}
		if b != nil {
			s.CPUStats[cpu] = b
		}
	}
	return nil
}

func readDirCapped(dir string, limit int) ([]os.DirEntry, error) {
	fi, err := os.Lstat(dir)
	if err != nil {
		return nil, err
	}
	if !fi.IsDir() {
		return nil, fmt.Errorf("read %s: not a directory", dir)
	}
	f, err := os.Open(dir)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	ents, err := f.ReadDir(limit + 1)
	if err != nil && !errors.Is(err, io.EOF) {
		return nil, fmt.Errorf("read directory %s: %w", dir, err)
	}
	if len(ents) > limit {
		return nil, fmt.Errorf("read directory %s: more than %d entries", dir, limit)
	}
	return ents, nil
}

// readCapped reads a regular file of at most limit bytes. Symlinks, FIFOs
// and devices are refused: a FIFO would block and a symlink could lead out
// of the directory.
func readCapped(path string, limit int) ([]byte, error) {
	fi, err := os.Lstat(path)
	if err != nil {
		return nil, err
	}
	if !fi.Mode().IsRegular() {
		return nil, fmt.Errorf("read %s: not a regular file (%s)", path, fi.Mode().Type())
	}
	f, err := os.OpenFile(path, os.O_RDONLY|sys.ONofollow|sys.ONonblock, 0)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	// tracefs files report size 0: read up to the limit instead of trusting
	// the size, which only sizes the first buffer.
	b := make([]byte, 0, min(fi.Size(), int64(limit))+512)
	for {
		if len(b) == cap(b) {
			b = append(b, 0)[:len(b)]
		}
		n, err := f.Read(b[len(b):min(cap(b), limit+1)])
		b = b[:len(b)+n]
		if errors.Is(err, io.EOF) || len(b) > limit {
			break
		}
		if err != nil {
			return nil, fmt.Errorf("read %s: %w", path, err)
		}
	}
	if len(b) > limit {
		return nil, fmt.Errorf("read %s: larger than the limit of %d bytes", path, limit)
	}
	return b, nil
}

// readOptional is readCapped with a missing file giving nil, nil.
func readOptional(path string, limit int) ([]byte, error) {
	b, err := readCapped(path, limit)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	return b, err
}
