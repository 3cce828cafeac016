package meta

import (
	"errors"
	"fmt"
	"sort"
	"strings"

	"github.com/vtrace/vtrace/proto/clip"
	"github.com/vtrace/vtrace/proto/ringbuf"
	"github.com/vtrace/vtrace/proto/wire"
)

// Events parses every format and maps each event id to its name. It fails
// on a bad name, a format that does not parse, a name that differs from
// its directory, or an id used twice.
func (s *Set) Events() (map[uint16]Event, error) {
	if len(s.Formats) == 0 {
		return nil, errors.New("check metadata: no event formats (events/SYSTEM/EVENT/format)")
	}
	if len(s.Formats) > MaxSystems {
		return nil, fmt.Errorf("check metadata: %d event systems, more than %d", len(s.Formats), MaxSystems)
	}
	ids := map[uint16]Event{}
	total, n := 0, 0
	for sys, evs := range s.Formats {
		if !wire.ValidName(sys) {
			return nil, fmt.Errorf("check metadata: invalid system name %q", clip.Text(sys, maxQuoted))
		}
		for ev, text := range evs {
			path := "events/" + sys + "/" + clip.Text(ev, maxQuoted) + "/format"
			if !wire.ValidName(ev) {
				return nil, fmt.Errorf("check metadata: invalid event name %q in system %s", clip.Text(ev, maxQuoted), sys)
			}
			if n++; n > MaxEvents {
				return nil, fmt.Errorf("check metadata: more than %d event formats", MaxEvents)
			}
			if err := capped(path, len(text), MaxFormat); err != nil {
				return nil, err
			}
			if total += len(text); total > MaxFormatsTotal {
				return nil, fmt.Errorf("check metadata: event formats larger than %d MiB together", MaxFormatsTotal>>20)
			}
			f, err := ParseFormat(text)
			if err != nil {
				return nil, fmt.Errorf("check metadata: %s: %w", path, err)
			}
			if f.Name != ev {
				return nil, fmt.Errorf("check metadata: %s names event %q", path, f.Name)
			}
			if prev, dup := ids[f.ID]; dup {
				return nil, fmt.Errorf("check metadata: %s reuses id %d of %s", path, f.ID, prev)
			}
			ids[f.ID] = Event{sys, ev}
		}
	}
	return ids, nil
}

// Layout is the ring-buffer page layout the guest's header_page describes.
func (s *Set) Layout() (ringbuf.Layout, error) {
	return ringbuf.ParseHeaderPage(s.HeaderPage)
}

// SelectedClock is the clock trace_clock marks with brackets ("local"), or
// "" when unknown.
func (s *Set) SelectedClock() string {
	i := strings.IndexByte(s.Clock, '[')
	if i < 0 {
		return ""
	}
	j := strings.IndexByte(s.Clock[i:], ']')
	if j < 0 {
		return ""
	}
	return s.Clock[i+1 : i+j]
}

// Systems returns the system names in order, ftrace first, as trace.dat
// lists them.
func (s *Set) Systems() []string {
	names := make([]string, 0, len(s.Formats))
	for sys := range s.Formats {
		names = append(names, sys)
	}
	sort.Slice(names, func(i, j int) bool {
		if (names[i] == "ftrace") != (names[j] == "ftrace") {
			return names[i] == "ftrace"
		}
		return names[i] < names[j]
	})
	return names
}

// EventNames returns the event names of one system in order.
func (s *Set) EventNames(system string) []string {
	names := make([]string, 0, len(s.Formats[system]))
	for ev := range s.Formats[system] {
		names = append(names, ev)
	}
	sort.Strings(names)
	return names
}
