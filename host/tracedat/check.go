package tracedat

import (
	"errors"
	"fmt"
	"io"

	"github.com/vtrace/vtrace/proto/ringbuf"
)

// MaxBadListed bounds the pages a Result lists in BadPages; each CPU's
// count (CPUResult.BadPages) is complete.
const MaxBadListed = 100

// copyBufSize is how many bytes of pages one read and one write move.
const copyBufSize = 1 << 20

// BadPage is a page of a CPU's stream that the page reader
// (ringbuf.ParsePage) refused: the trace.dat holds an empty page in its
// place.
type BadPage struct {
	CPU   int
	Index int64 // the page's number in the CPU's stream (cpuN.raw), from 0
	Err   error // why: wraps ringbuf.ErrCorrupt
}

func (b BadPage) String() string {
	return fmt.Sprintf("CPU %d page %d: %v", b.CPU, b.Index, b.Err)
}

// pageCheck checks one CPU's pages as they go into the file. A page the
// page reader refuses becomes an empty page (no events, commit 0), so that
// one bad page costs its own events and nothing else: trace-cmd stops
// reading a CPU's data at a page it cannot parse, and refuses the whole
// file when that page is the first. An empty page keeps the size and the
// offsets of everything planned before the pages are read (a version 6
// header, a version 7 BUFFER option), and page N of cpuN.raw stays page N
// of the CPU's data.
type pageCheck struct {
	l   ringbuf.Layout
	cpu int
	res *Result
	idx int64  // index of the next page
	ts  uint64 // an empty page's timestamp: the last good page's last event
}

func (in *inputs) check(res *Result, cpu int) *pageCheck {
	return &pageCheck{l: in.layout, cpu: cpu, res: res}
}

// pages checks b, whole pages, and empties in place the ones refused.
func (c *pageCheck) pages(b []byte) {
	for off := 0; off+c.l.PageSize <= len(b); off += c.l.PageSize {
		p := b[off : off+c.l.PageSize]
		ps, err := ringbuf.ParsePage(c.l, p, nil)
		if err != nil {
			c.l.EmptyPage(p, c.ts)
			c.res.CPUs[c.cpu].BadPages++
			if len(c.res.BadPages) < MaxBadListed {
				c.res.BadPages = append(c.res.BadPages, BadPage{CPU: c.cpu, Index: c.idx, Err: err})
			}
		} else {
			c.ts = ps.LastTS
		}
		c.idx++
	}
}

// copyChecked copies exactly n bytes (whole pages) from src to w through
// buf, checking every page on the way.
func copyChecked(w io.Writer, src io.Reader, n int64, c *pageCheck, buf []byte) error {
	for left := n; left > 0; {
		b := buf[:min(left, int64(len(buf)))]
		if m, err := io.ReadFull(src, b); err != nil {
			if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
				return fmt.Errorf("input ended %d bytes early", left-int64(m))
			}
			return err
		}
		c.pages(b)
		if _, err := w.Write(b); err != nil {
			return err
		}
		left -= int64(len(b))
	}
	return nil
}

// WriteBadPages prints one WARNING line per page of r.BadPages (its CPU,
// index, file offset and reason) and, for a CPU with more than were
// listed, its count.
func (r Result) WriteBadPages(w io.Writer) error {
	listed := map[int]int64{}
	for _, b := range r.BadPages {
		listed[b.CPU]++
		if _, err := fmt.Fprintf(w, "WARNING: cpu%d.raw: page %d (offset %d) is corrupt, written as an empty page: %v\n",
			b.CPU, b.Index, b.Index*r.PageSize, b.Err); err != nil {
			return err
		}
	}
	for _, c := range r.CPUs {
		if c.BadPages > listed[c.CPU] {
			if _, err := fmt.Fprintf(w, "WARNING: cpu%d.raw: %d corrupt pages in all, written as empty pages (%d listed above)\n",
				c.CPU, c.BadPages, listed[c.CPU]); err != nil {
				return err
			}
		}
	}
	return nil
}

// newCopyBuf is a buffer of whole pages for copyChecked.
func newCopyBuf(page int64) []byte {
	return make([]byte, max(copyBufSize/page, 1)*page)
}
