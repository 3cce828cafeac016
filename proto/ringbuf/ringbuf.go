// Package ringbuf reads the pages of the kernel's ftrace ring buffer, as
// trace_pipe_raw hands them out, and counts what they hold: events, padding,
// time extends and the missed-events flags.
//
// It is pure Go with no syscalls: the host uses it on data that came from a
// guest, so every length is checked against the page and a bad page is an
// error, never a panic. The page layout comes from events/header_page.
//
// A page is: u64 timestamp, a commit word (8 bytes on 64-bit kernels) whose
// low bits count the data bytes in use and whose bits 31 and 30 flag missed
// events (and whether their count is stored after the data), then the data:
// a sequence of events, each led by a 32-bit header of type_len (5 bits) and
// time_delta (27 bits).
package ringbuf

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
)

// Errors wrapped by the parser.
var (
	// ErrTruncated: the input ended inside a page or an event.
	ErrTruncated = errors.New("truncated")
	// ErrCorrupt: a length or type in the page cannot be right.
	ErrCorrupt = errors.New("corrupt page")
)

// Commit word flags and masks (kernel ring_buffer.c).
const (
	flagMissedEvents = 1 << 31
	flagMissedStored = 1 << 30
	commitMask       = 1<<27 - 1
)

// Event header type_len values.
const (
	typePadding    = 29
	typeTimeExtend = 30
	typeTimeStamp  = 31
	maxDataType    = 28
	tsShift        = 27
	tsMSB          = uint64(0xf8) << 56
)

// Limits on what a layout may claim, so a hostile header_page cannot make
// us allocate or index wildly.
const (
	minPageSize = 64
	maxPageSize = 1 << 20
)

// Layout says where the fields of a ring-buffer page are.
type Layout struct {
	PageSize     int // bytes per page (the sub-buffer size), header included
	CommitOffset int
	CommitSize   int // 8 on 64-bit kernels, 4 on 32-bit
	DataOffset   int
}

// DefaultLayout is the layout of x86-64 and other 64-bit kernels with the
// default 4 KiB sub-buffers.
func DefaultLayout() Layout {
	return Layout{PageSize: 4096, CommitOffset: 8, CommitSize: 8, DataOffset: 16}
}

// Validate checks that the layout is self-consistent and bounded. Each
// field is compared against an already bounded one, so no sum can wrap.
func (l Layout) Validate() error {
	switch {
	case l.PageSize < minPageSize || l.PageSize > maxPageSize:
		return fmt.Errorf("page size %d out of range [%d, %d]: %w", l.PageSize, minPageSize, maxPageSize, ErrCorrupt)
	case l.DataOffset < 16 || l.DataOffset >= l.PageSize:
		return fmt.Errorf("data offset %d outside the page header room [16, %d): %w", l.DataOffset, l.PageSize, ErrCorrupt)
	case l.CommitSize != 4 && l.CommitSize != 8:
		return fmt.Errorf("commit size %d is neither 4 nor 8: %w", l.CommitSize, ErrCorrupt)
	case l.CommitOffset < 8 || l.CommitOffset > l.DataOffset-l.CommitSize:
		return fmt.Errorf("commit field at %d+%d overlaps timestamp or data at %d: %w", l.CommitOffset, l.CommitSize, l.DataOffset, ErrCorrupt)
	}
	return nil
}

// EmptyPage fills page (at least PageSize bytes) with a page that holds no
// events: timestamp ts, commit 0, no flags, zero data. Readers pass over it.
func (l Layout) EmptyPage(page []byte, ts uint64) {
	clear(page[:l.PageSize])
	binary.LittleEndian.PutUint64(page, ts)
}

// ParseHeaderPage reads the text of tracefs events/header_page.
func ParseHeaderPage(text []byte) (Layout, error) {
	type field struct{ off, size int }
	fields := map[string]field{}
	sc := bufio.NewScanner(bytes.NewReader(text))
	sc.Buffer(make([]byte, 0, 256), 4096)
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if !strings.HasPrefix(line, "field:") {
			continue
		}
		var name string
		f := field{-1, -1}
		for _, part := range strings.Split(line, ";") {
			part = strings.TrimSpace(part)
			switch {
			case strings.HasPrefix(part, "field:"):
				words := strings.Fields(strings.TrimPrefix(part, "field:"))
				if len(words) > 0 {
					name = words[len(words)-1]
				}
			case strings.HasPrefix(part, "offset:"):
				f.off, _ = strconv.Atoi(strings.TrimPrefix(part, "offset:"))
			case strings.HasPrefix(part, "size:"):
				f.size, _ = strconv.Atoi(strings.TrimPrefix(part, "size:"))
			}
		}
		if name != "" && f.off >= 0 && f.size >= 0 {
			if _, dup := fields[name]; !dup {
				fields[name] = f
			}
		}
	}
	if err := sc.Err(); err != nil {
		return Layout{}, fmt.Errorf("read header_page: %w", err)
	}
	ts, okT := fields["timestamp"]
	commit, okC := fields["commit"]
	data, okD := fields["data"]
	if !okT || !okC || !okD {
		return Layout{}, fmt.Errorf("parse header_page: timestamp, commit or data field missing: %w", ErrCorrupt)
	}
	if ts.off != 0 || ts.size != 8 {
		return Layout{}, fmt.Errorf("parse header_page: timestamp at %d size %d, want 0 and 8: %w", ts.off, ts.size, ErrCorrupt)
	}
	l := Layout{PageSize: data.off + data.size, CommitOffset: commit.off, CommitSize: commit.size, DataOffset: data.off}
	if err := l.Validate(); err != nil {
		return Layout{}, fmt.Errorf("parse header_page: %w", err)
	}
	return l, nil
}

// LayoutFromTracefs reads DIR/events/header_page. DIR may be a tracefs root
// or an ftrace instance directory; instances share the root's header_page,
// found two levels up.
func LayoutFromTracefs(dir string) (Layout, error) {
	candidates := []string{
		filepath.Join(dir, "events", "header_page"),
		filepath.Join(dir, "..", "..", "events", "header_page"),
	}
	var firstErr error
	for _, p := range candidates {
		b, err := os.ReadFile(p)
		if err != nil {
			if firstErr == nil {
				firstErr = err
			}
			continue
		}
		return ParseHeaderPage(b)
	}
	return Layout{}, fmt.Errorf("read events/header_page: %w", firstErr)
}

// Record is one trace event found in a page.
type Record struct {
	TS      uint64 // absolute: page timestamp plus the deltas before it
	Payload []byte // the event's data, starting with its u16 common_type; aliases the page
}

// Type is the event's common_type, the id in its format file ("ID: N").
func (r Record) Type() uint16 {
	if len(r.Payload) < 2 {
		return 0
	}
	return binary.LittleEndian.Uint16(r.Payload)
}

// PageStats is what one page holds.
type PageStats struct {
	Timestamp   uint64 // the page's base timestamp
	LastTS      uint64 // the timestamp of its last event
	DataBytes   int    // committed data bytes
	Events      int
	Padding     int // padding and discarded events
	TimeExtends int
	TimeStamps  int // absolute time stamps
	Missed      bool
	// MissedCounted says the kernel stored the number of missed events
	// after the data (it does only when the page has room for it).
	MissedCounted bool
	MissedCount   uint64 // events lost before this page, when MissedCounted
}

// ParsePage walks one page and calls fn, if not nil, for each event. An
// error from fn stops the walk and is returned as is.
func ParsePage(l Layout, page []byte, fn func(Record) error) (PageStats, error) {
	var ps PageStats
	if err := l.Validate(); err != nil {
		return ps, err
	}
	if len(page) < l.PageSize {
		return ps, fmt.Errorf("page of %d bytes, want %d: %w", len(page), l.PageSize, ErrTruncated)
	}
	ps.Timestamp = binary.LittleEndian.Uint64(page)
	var commit uint64
	if l.CommitSize == 8 {
		commit = binary.LittleEndian.Uint64(page[l.CommitOffset:])
	} else {
		commit = uint64(binary.LittleEndian.Uint32(page[l.CommitOffset:]))
	}
	size := int(commit & commitMask)
	data := page[l.DataOffset:l.PageSize]
	if size > len(data) {
		return ps, fmt.Errorf("commit %d beyond page data of %d bytes: %w", size, len(data), ErrCorrupt)
	}
	ps.DataBytes = size
	ps.Missed = commit&flagMissedEvents != 0
	if ps.Missed && commit&flagMissedStored != 0 {
		// The count follows the data, as a long of the kernel's size.
		end := size + l.CommitSize
		if end > len(data) {
			return ps, fmt.Errorf("missed-events count beyond the page: %w", ErrCorrupt)
		}
		if l.CommitSize == 8 {
			ps.MissedCount = binary.LittleEndian.Uint64(data[size:])
		} else {
			ps.MissedCount = uint64(binary.LittleEndian.Uint32(data[size:]))
		}
		ps.MissedCounted = true
	}
	ts := ps.Timestamp
	ps.LastTS = ts
	data = data[:size]
	for off := 0; off < len(data); {
		if len(data)-off < 4 {
			return ps, fmt.Errorf("event header at %d past commit %d: %w", off, size, ErrCorrupt)
		}
		hdr := binary.LittleEndian.Uint32(data[off:])
		typeLen := int(hdr & 0x1f)
		delta := uint64(hdr >> 5)
		arg := func() (uint32, error) {
			if len(data)-off < 8 {
				return 0, fmt.Errorf("event of type %d at %d cut by commit %d: %w", typeLen, off, size, ErrCorrupt)
			}
			return binary.LittleEndian.Uint32(data[off+4:]), nil
		}
		switch {
		case typeLen == typePadding:
			if delta == 0 {
				// A null event: the rest of the page is padding.
				ps.Padding++
				off = len(data)
				continue
			}
			n, err := arg()
			if err != nil {
				return ps, err
			}
			if uint64(n) > uint64(len(data)-off-4) {
				return ps, fmt.Errorf("padding of %d bytes at %d past commit %d: %w", n, off, size, ErrCorrupt)
			}
			ps.Padding++
			off += 4 + int(n)
		case typeLen == typeTimeExtend:
			n, err := arg()
			if err != nil {
				return ps, err
			}
			ts += uint64(n)<<tsShift | delta
			ps.TimeExtends++
			off += 8
		case typeLen == typeTimeStamp:
			n, err := arg()
			if err != nil {
				return ps, err
			}
			abs := uint64(n)<<tsShift | delta
			if ts&tsMSB != 0 {
				abs |= ts & tsMSB
				if abs < ts {
					abs += 1 << 59
				}
			}
			ts = abs
			ps.TimeStamps++
			off += 8
		default:
			var payload []byte
			if typeLen == 0 {
				n, err := arg()
				if err != nil {
					return ps, err
				}
				if n < 4 || uint64(n) > uint64(len(data)-off-4) {
					return ps, fmt.Errorf("event length %d at %d does not fit commit %d: %w", n, off, size, ErrCorrupt)
				}
				payload = data[off+8 : off+4+int(n)]
				off += 4 + int(n)
			} else {
				n := typeLen * 4
				if n > len(data)-off-4 {
					return ps, fmt.Errorf("event length %d at %d does not fit commit %d: %w", n, off, size, ErrCorrupt)
				}
				payload = data[off+4 : off+4+n]
				off += 4 + n
			}
			ts += delta
			ps.Events++
			ps.LastTS = ts
			if fn != nil {
				if err := fn(Record{TS: ts, Payload: payload}); err != nil {
					return ps, err
				}
			}
		}
	}
	return ps, nil
}
