// Package stats summarises a capture directory: per CPU and per event, how
// many events its raw pages hold, their first and last timestamps, the
// pages the kernel flagged for missed events and the pages the page reader
// refused. Event ids become names through the capture's format files
// (common_type → "system:event"); the kernel's per-CPU counters saved with
// the capture (meta/cpustats) give the number of events lost.
package stats

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"os"
	"sort"
	"strconv"
	"strings"
	"text/tabwriter"

	"github.com/vtrace/vtrace/host/meta"
	"github.com/vtrace/vtrace/host/tracedat"
	"github.com/vtrace/vtrace/proto/ringbuf"
)

// maxBadShown bounds the corrupt pages a CPU lists; Stats.CorruptPages
// counts them all.
const maxBadShown = 3

// CPU is one CPU's summary.
type CPU struct {
	CPU       int
	Stats     ringbuf.Stats     // of the good pages; CorruptPages counts the others
	Truncated bool              // the file ends inside a page (those bytes are not counted)
	Bad       []ringbuf.BadPage // the first corrupt pages, skipped
	Err       error             // a read error stopped the scan; Stats cover the pages before it
	Counters  *Counters         // the kernel's counters saved with the capture; nil without
}

// Lost is the number of events the CPU lost and whether it is exact: the
// kernel's counters (overrun, commit overrun, dropped) when the capture
// has them, else what the flagged pages say, which is a lower bound when
// a flagged page carries no count.
func (c CPU) Lost() (n uint64, exact bool) {
	if c.Counters != nil {
		return c.Counters.Lost(), true
	}
	return c.Stats.MissedAtLeast(), c.Stats.MissedUncounted == 0
}

// NotStreamed reports whether nothing suggests the CPU was streamed at
// all: its file is empty and the capture has no counters for it while it
// has some for other CPUs (the agent sends counters for every CPU it
// streams).
func (r *Report) NotStreamed(c CPU) bool {
	if c.Counters != nil || c.Stats.Bytes > 0 {
		return false
	}
	for _, o := range r.CPUs {
		if o.Counters != nil {
			return true
		}
	}
	return false
}

// Event is one event name on one CPU (CPU -1: all CPUs).
type Event struct {
	Name            string // "sched:sched_switch", or "id 317" without formats
	ID              uint16
	CPU             int
	Count           int64
	FirstTS, LastTS uint64
}

// Report is the summary of a capture.
type Report struct {
	Dir      string
	Clock    string // the selected trace clock, "" if unknown
	Named    bool   // event names come from formats
	PageSize int
	CPUs     []CPU
	Events   []Event // per (event, CPU), then the all-CPU total of each event
}

// Collect scans every cpuN.raw of dir. s (may be nil) names the events
// and gives the page layout; without it the default layout is assumed.
func Collect(dir string, s *meta.Set) (*Report, error) { return CollectPages(dir, s, 0) }

// CollectPages is Collect with the guest's page size (the ring buffer's
// sub-buffer size) in bytes, for a capture without metadata whose pages are
// not 4096 bytes; 0 takes s's header_page, else 4096. A page size that
// disagrees with s's header_page is an error.
func CollectPages(dir string, s *meta.Set, pageSize int) (*Report, error) {
	cpus, err := tracedat.CaptureCPUs(dir)
	if err != nil {
		return nil, err
	}
	sort.Slice(cpus, func(i, j int) bool { return cpus[i].CPU < cpus[j].CPU })
	l := ringbuf.DefaultLayout()
	var names map[uint16]meta.Event
	r := &Report{Dir: dir}
	counters := map[int]*Counters{}
	if s != nil {
		for cpu, text := range s.CPUStats {
			c, err := ParseCounters(text)
			if err != nil {
				return nil, fmt.Errorf("collect stats: cpustats/cpu%d: %w", cpu, err)
			}
			counters[cpu] = &c
		}
		if l, err = s.Layout(); err != nil {
			return nil, fmt.Errorf("collect stats: %w", err)
		}
		if pageSize > 0 && pageSize != l.PageSize {
			return nil, fmt.Errorf("collect stats: page size %d: the capture's header_page says %d", pageSize, l.PageSize)
		}
		if names, err = s.Events(); err != nil {
			return nil, fmt.Errorf("collect stats: %w", err)
		}
		r.Named = true
		r.Clock = s.SelectedClock()
	}
	if pageSize < 0 || pageSize&(pageSize-1) != 0 {
		return nil, fmt.Errorf("collect stats: page size %d: want a power of two", pageSize)
	}
	if s == nil && pageSize > 0 {
		l.PageSize = pageSize
		if err := l.Validate(); err != nil {
			return nil, fmt.Errorf("collect stats: page size %d: %w", pageSize, err)
		}
	}
	r.PageSize = l.PageSize
	type key struct {
		id  uint16
		cpu int
	}
	byKey := map[key]*Event{}
	name := func(id uint16) string {
		if e, ok := names[id]; ok {
			return e.String()
		}
		return "id " + strconv.Itoa(int(id))
	}
	note := func(k key, ts uint64) {
		e := byKey[k]
		if e == nil {
			e = &Event{Name: name(k.id), ID: k.id, CPU: k.cpu, FirstTS: ts}
			byKey[k] = e
		}
		e.Count++
		e.LastTS = ts
	}
	for _, c := range cpus {
		f, err := os.Open(c.Path)
		if err != nil {
			return nil, fmt.Errorf("collect stats: %w", err)
		}
		sc := CPU{CPU: c.CPU, Counters: counters[c.CPU]}
		st, err := ringbuf.ScanSkipping(l, bufio.NewReaderSize(f, 1<<16), func(rec ringbuf.Record) error {
			note(key{rec.Type(), c.CPU}, rec.TS)
			return nil
		}, func(b ringbuf.BadPage) {
			if len(sc.Bad) < maxBadShown {
				sc.Bad = append(sc.Bad, b)
			}
		})
		f.Close()
		sc.Stats = st
		switch {
		case errors.Is(err, ringbuf.ErrTruncated) && st.Bytes%int64(l.PageSize) != 0:
			sc.Truncated = true
		case err != nil:
			sc.Err = err
		}
		r.CPUs = append(r.CPUs, sc)
	}

	totals := map[uint16]*Event{}
	for k, e := range byKey {
		r.Events = append(r.Events, *e)
		t := totals[k.id]
		if t == nil {
			t = &Event{Name: e.Name, ID: e.ID, CPU: -1, FirstTS: e.FirstTS, LastTS: e.LastTS}
			totals[k.id] = t
		}
		t.Count += e.Count
		t.FirstTS, t.LastTS = min(t.FirstTS, e.FirstTS), max(t.LastTS, e.LastTS)
	}
	for _, t := range totals {
		if len(r.CPUs) > 1 {
			r.Events = append(r.Events, *t)
		}
	}
	sort.Slice(r.Events, func(i, j int) bool {
		a, b := r.Events[i], r.Events[j]
		if a.Name != b.Name {
			return a.Name < b.Name
		}
		return uint(a.CPU) < uint(b.CPU) // -1 (all) last
	})
	return r, nil
}

// lostText is the LOST EVENTS cell: the kernel's figure when the capture
// has its counters, else what the flagged pages say.
func lostText(c CPU) string {
	n, exact := c.Lost()
	switch {
	case c.Counters != nil:
		if n == 0 && c.Stats.MissedPages == 0 {
			return "none"
		}
		return fmt.Sprintf("%d (kernel counters; %d pages flagged)", n, c.Stats.MissedPages)
	case c.Stats.MissedPages == 0:
		return "none"
	case exact:
		return fmt.Sprintf("%d (%d pages flagged)", n, c.Stats.MissedPages)
	}
	return fmt.Sprintf("at least %d (%d pages flagged, %d without a count)", n, c.Stats.MissedPages, c.Stats.MissedUncounted)
}

// TotalEvents is the number of events on all CPUs.
func (r *Report) TotalEvents() int64 {
	var n int64
	for _, c := range r.CPUs {
		n += c.Stats.Events
	}
	return n
}

// ts prints a timestamp as trace-cmd does for nanosecond clocks, and raw
// for counting clocks.
func (r *Report) ts(v uint64) string {
	if r.Clock == "counter" || r.Clock == "x86-tsc" {
		return strconv.FormatUint(v, 10)
	}
	return fmt.Sprintf("%d.%06d", v/1e9, v%1e9/1e3)
}

// WriteTable prints the report as two aligned tables.
func (r *Report) WriteTable(w io.Writer) error {
	clock := r.Clock
	if clock == "" {
		clock = "unknown"
	}
	fmt.Fprintf(w, "capture %s: %d CPUs, %d events, trace clock %s, pages of %d bytes\n", r.Dir, len(r.CPUs), r.TotalEvents(), clock, r.PageSize)
	if !r.Named {
		fmt.Fprintln(w, "no metadata: events shown by id (give --meta DIR for names), pages as --page-size says (default 4096)")
	}
	fmt.Fprintln(w)
	tw := tabwriter.NewWriter(w, 0, 8, 2, ' ', 0)
	fmt.Fprintln(tw, "CPU\tPAGES\tEVENTS\tFIRST\tLAST\tLOST EVENTS\tNOTES")
	for _, c := range r.CPUs {
		if r.NotStreamed(c) {
			fmt.Fprintf(tw, "%d\t-\t-\t-\t-\t-\tnot streamed: no data and no counters from the agent\n", c.CPU)
			continue
		}
		first, last := "-", "-"
		if c.Stats.Events > 0 {
			first, last = r.ts(c.Stats.FirstTS), r.ts(c.Stats.LastTS)
		}
		var notes []string
		if c.Truncated {
			notes = append(notes, fmt.Sprintf("%d trailing bytes (a partial page) ignored", c.Stats.Bytes%int64(r.PageSize)))
		}
		if c.Stats.CorruptPages > 0 {
			notes = append(notes, fmt.Sprintf("%d corrupt pages skipped", c.Stats.CorruptPages))
		}
		if c.Err != nil {
			notes = append(notes, "stopped: "+c.Err.Error())
		}
		fmt.Fprintf(tw, "%d\t%d\t%d\t%s\t%s\t%s\t%s\n", c.CPU, c.Stats.Pages, c.Stats.Events, first, last, lostText(c), strings.Join(notes, "; "))
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	for _, c := range r.CPUs {
		for _, b := range c.Bad {
			fmt.Fprintf(w, "WARNING: cpu%d.raw: page %d (offset %d) is corrupt and was skipped: %v\n", c.CPU, b.Index, b.Index*int64(r.PageSize), b.Err)
		}
		if n := c.Stats.CorruptPages - int64(len(c.Bad)); n > 0 {
			fmt.Fprintf(w, "WARNING: cpu%d.raw: %d more corrupt pages skipped\n", c.CPU, n)
		}
		if n, exact := c.Lost(); n > 0 && !exact {
			fmt.Fprintf(w, "WARNING: CPU %d lost at least %d events: %d pages are flagged for missed events, %d of them without a count (the kernel stores one only when the page has room)\n",
				c.CPU, n, c.Stats.MissedPages, c.Stats.MissedUncounted)
		}
	}
	fmt.Fprintln(w)
	tw = tabwriter.NewWriter(w, 0, 8, 2, ' ', 0)
	fmt.Fprintln(tw, "EVENT\tCPU\tCOUNT\tFIRST\tLAST")
	for _, e := range r.Events {
		cpu := strconv.Itoa(e.CPU)
		if e.CPU < 0 {
			cpu = "all"
		}
		fmt.Fprintf(tw, "%s\t%s\t%d\t%s\t%s\n", e.Name, cpu, e.Count, r.ts(e.FirstTS), r.ts(e.LastTS))
	}
	return tw.Flush()
}
