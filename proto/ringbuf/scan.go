package ringbuf

import (
	"bufio"
	"fmt"
	"io"
	"os"
)

// Stats sums the pages of one CPU's stream.
type Stats struct {
	Pages        int64
	EmptyPages   int64 // pages with no committed data (e.g. zero padding)
	Events       int64
	Padding      int64
	TimeExtends  int64
	MissedPages  int64  // pages flagged with missed events before them
	MissedEvents uint64 // the sum of the stored missed counts
	// MissedUncounted is how many of the MissedPages carry no count: the
	// kernel stores one only when the page has room after its data.
	MissedUncounted int64
	// CorruptPages counts the pages ScanSkipping passed over because
	// ParsePage refused them; they add nothing else to the Stats.
	CorruptPages int64
	Bytes        int64
	FirstTS      uint64 // first event's timestamp, 0 if none
	LastTS       uint64
	ByType       map[uint16]int64
}

// Add folds one page's stats into s.
func (s *Stats) Add(ps PageStats) {
	s.Pages++
	if ps.DataBytes == 0 {
		s.EmptyPages++
	}
	s.Events += int64(ps.Events)
	s.Padding += int64(ps.Padding)
	s.TimeExtends += int64(ps.TimeExtends)
	if ps.Missed {
		s.MissedPages++
		s.MissedEvents += ps.MissedCount
		if !ps.MissedCounted {
			s.MissedUncounted++
		}
	}
}

// MissedAtLeast is the fewest events the flagged pages say were lost: the
// stored counts, plus one for each flagged page without a count (the flag
// is set only when at least one event was lost). Exact when
// MissedUncounted is 0.
func (s Stats) MissedAtLeast() uint64 {
	return s.MissedEvents + uint64(s.MissedUncounted)
}

// note counts one event of a good page in s: its timestamp and type.
func (s *Stats) note(rec Record) {
	if s.FirstTS == 0 {
		s.FirstTS = rec.TS
	}
	s.LastTS = rec.TS
	s.ByType[rec.Type()]++
}

// readPages reads r one whole page of l.PageSize bytes at a time, adds
// each page's bytes to s.Bytes and calls each with it, until r ends. A
// trailing partial page is an error wrapping ErrTruncated; each's error
// ends the read and is returned as is.
func readPages(l Layout, r io.Reader, s *Stats, each func(page []byte) error) error {
	page := make([]byte, l.PageSize)
	for {
		n, err := io.ReadFull(r, page)
		if err == io.EOF {
			return nil
		}
		if err == io.ErrUnexpectedEOF {
			s.Bytes += int64(n)
			return fmt.Errorf("page %d: %d trailing bytes, not a whole page of %d: %w", s.Pages, n, l.PageSize, ErrTruncated)
		}
		if err != nil {
			return fmt.Errorf("read page %d: %w", s.Pages, err)
		}
		s.Bytes += int64(n)
		if err := each(page); err != nil {
			return err
		}
	}
}

// Scan reads r page by page to its end. fn, if not nil, sees every event.
// A trailing partial page is reported with an error wrapping ErrTruncated;
// the returned Stats then cover every whole page before it.
func Scan(l Layout, r io.Reader, fn func(Record) error) (Stats, error) {
	s := Stats{ByType: map[uint16]int64{}}
	if err := l.Validate(); err != nil {
		return s, err
	}
	count := func(rec Record) error {
		s.note(rec)
		if fn != nil {
			return fn(rec)
		}
		return nil
	}
	err := readPages(l, r, &s, func(page []byte) error {
		ps, err := ParsePage(l, page, count)
		if err != nil {
			return fmt.Errorf("page %d: %w", s.Pages, err)
		}
		s.Add(ps)
		return nil
	})
	return s, err
}

// BadPage is a page that ParsePage refused.
type BadPage struct {
	Index int64 // the page's number in its stream, from 0
	Err   error // why: wraps ErrCorrupt
}

// ScanSkipping is Scan that goes on past a page ParsePage refuses: it
// calls bad, if not nil, with the page's index and reason, counts it in
// CorruptPages (and Pages and Bytes) and nothing else of it: fn sees the
// events of good pages only. The error is a read error, fn's, or a
// trailing partial page (wrapping ErrTruncated).
func ScanSkipping(l Layout, r io.Reader, fn func(Record) error, bad func(BadPage)) (Stats, error) {
	s := Stats{ByType: map[uint16]int64{}}
	if err := l.Validate(); err != nil {
		return s, err
	}
	var recs []Record // one page's events, kept until the page proves good
	keep := func(rec Record) error {
		recs = append(recs, rec)
		return nil
	}
	err := readPages(l, r, &s, func(page []byte) error {
		recs = recs[:0]
		ps, err := ParsePage(l, page, keep)
		if err != nil {
			if bad != nil {
				bad(BadPage{Index: s.Pages, Err: err})
			}
			s.Pages++
			s.CorruptPages++
			return nil
		}
		for _, rec := range recs {
			s.note(rec)
			if fn != nil {
				if err := fn(rec); err != nil {
					return err
				}
			}
		}
		s.Add(ps)
		return nil
	})
	return s, err
}

// scanFile opens the capture at path and hands scan a buffered reader of it.
func scanFile(path string, scan func(io.Reader) (Stats, error)) (Stats, error) {
	f, err := os.Open(path)
	if err != nil {
		return Stats{ByType: map[uint16]int64{}}, fmt.Errorf("open capture: %w", err)
	}
	defer f.Close()
	return scan(bufio.NewReaderSize(f, 1<<16))
}

// ScanFileSkipping is ScanSkipping on a file.
func ScanFileSkipping(l Layout, path string, fn func(Record) error, bad func(BadPage)) (Stats, error) {
	return scanFile(path, func(r io.Reader) (Stats, error) { return ScanSkipping(l, r, fn, bad) })
}

// ScanFile is Scan on a file.
func ScanFile(l Layout, path string, fn func(Record) error) (Stats, error) {
	return scanFile(path, func(r io.Reader) (Stats, error) { return Scan(l, r, fn) })
}
