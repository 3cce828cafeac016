// Package tracedat writes trace.dat files, the format trace-cmd and
// KernelShark open, from a metadata Set and each CPU's raw ring-buffer
// pages: version 6 (the flat layout every trace-cmd 2.x/3.x reads, the
// default) or version 7 (trace-cmd 3.x's sectioned layout, optionally
// zstd-compressed).
//
// Version 6: the header (magic, page and event headers, formats, kallsyms,
// printk formats, cmdlines, options, the per-CPU offsets) is built by
// WriteHeader, a pure function of its inputs. Write adds the pages: whole
// pages only, streamed from each CPU's file with copy_file_range (or a
// plain copy where the kernel cannot), so a capture is never held in
// memory.
//
// Version 7 (v7.go): options, then one section per kind of metadata, then
// one flyrecord section with every CPU's pages, copied as they are or
// compressed a chunk at a time; the few fields known only after the pages
// are compressed are filled in at the end (the output must then be a file).
//
// Byte order: the file says little-endian and its numbers are little-endian;
// the pages are copied as they are, so the guest must be little-endian too.
package tracedat

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"strconv"

	"github.com/vtrace/vtrace/host/meta"
	"github.com/vtrace/vtrace/proto/tracefs"
)

// Option ids (trace-cmd's trace-cmd.dat.v6 and .v7 documents). In version
// 7, the ids from 15 up are also the ids of the sections they point to,
// and BUFFER the id of the flyrecord section.
const (
	OptionDone         = 0
	OptionDate         = 1
	OptionCPUStat      = 2
	OptionBuffer       = 3
	OptionTraceClock   = 4
	OptionUname        = 5
	OptionCPUCount     = 8
	OptionStrings      = 15
	OptionHeaderInfo   = 16
	OptionFtraceEvents = 17
	OptionEventFormats = 18
	OptionKallsyms     = 19
	OptionPrintk       = 20
	OptionCmdlines     = 21
)

// Options tune the file.
type Options struct {
	// DateOffsetMicros, when not nil, is written as the DATE option: the
	// microseconds trace-cmd adds to every timestamp to show wall-clock
	// time. Leave it nil unless the offset between the guest's trace clock
	// and its real-time clock is known.
	DateOffsetMicros *int64
	// Format is the file version (0: DefaultFormat, or FormatV7 when
	// Compression asks for compression).
	Format Format
	// Compression applies to version 7 only ("": CompressNone).
	Compression Compression
	// Timeline, when not nil, adds TRACEID, TIME_SHIFT and GUEST
	// (options.go).
	Timeline *Timeline
}

var magic = []byte{0x17, 0x08, 0x44, 't', 'r', 'a', 'c', 'i', 'n', 'g', '6', 0}

// WriteHeader writes everything of a version 6 trace.dat before the first
// page (opts must not ask for another version):
// sizes[i] is the number of bytes of CPU i's pages (a multiple of the page
// size; 0 for a CPU without data). It returns the file offset of each CPU's
// pages (page-aligned, contiguous) and the header's length, which is
// offsets[0].
func WriteHeader(w io.Writer, s *meta.Set, sizes []int64, opts Options) (offsets []int64, err error) {
	if f, _, err := opts.resolve(); err != nil || f != FormatV6 {
		return nil, fmt.Errorf("write trace.dat header: %w: the flat header is version 6's, not %v", ErrFormat, f)
	}
	if err := s.Validate(); err != nil {
		return nil, fmt.Errorf("write trace.dat header: %w", err)
	}
	l, err := s.Layout()
	if err != nil {
		return nil, fmt.Errorf("write trace.dat header: %w", err)
	}
	if len(sizes) == 0 || len(sizes) > tracefs.MaxCPU+1 {
		return nil, fmt.Errorf("write trace.dat header: %d CPUs, want 1 to %d", len(sizes), tracefs.MaxCPU+1)
	}
	page := int64(l.PageSize)
	for cpu, n := range sizes {
		if n < 0 || n%page != 0 {
			return nil, fmt.Errorf("write trace.dat header: CPU %d has %d bytes, not a whole number of %d-byte pages", cpu, n, page)
		}
	}

	cw := &countWriter{w: w}
	e := &encoder{w: bufio.NewWriterSize(cw, 1<<16)}
	e.bytes(magic)
	e.u8(0) // little-endian
	e.u8(uint8(l.CommitSize))
	e.u32(uint32(l.PageSize))
	b := metaBodies(s)
	for _, body := range []*body{&b.headers, &b.ftrace, &b.events, &b.kallsyms, &b.printk, &b.cmdlines} {
		for _, p := range body.parts {
			e.bytes(p)
		}
	}
	e.u32(uint32(len(sizes)))

	e.bytes([]byte("options  \x00"))
	for _, o := range Encode(s, len(sizes), opts) {
		e.u16(o.ID)
		e.u32(uint32(len(o.Data)))
		e.bytes(o.Data)
	}
	e.u16(OptionDone)

	e.bytes([]byte("flyrecord\x00"))
	if err := e.flush(); err != nil {
		return nil, err
	}
	// What follows the flyrecord tag: the CPU table, the clock, padding.
	end := cw.n + int64(16*len(sizes))
	if s.Clock != "" {
		end += 8 + int64(len(s.Clock))
	}
	off := (end + page - 1) / page * page
	offsets = make([]int64, len(sizes))
	for cpu, n := range sizes {
		offsets[cpu] = off
		e.u64(uint64(off))
		e.u64(uint64(n))
		off += n
	}
	if s.Clock != "" {
		e.sized64([]byte(s.Clock))
	}
	e.bytes(make([]byte, offsets[0]-end))
	if err := e.flush(); err != nil {
		return nil, err
	}
	if cw.n != offsets[0] {
		return nil, fmt.Errorf("write trace.dat header: wrote %d bytes, planned %d", cw.n, offsets[0])
	}
	return offsets, nil
}

// Option is one entry of the options block.
type Option struct {
	ID   uint16
	Data []byte
}

// Encode lists the options vtrace writes, in order: DATE (when known),
// TRACECLOCK and UNAME (when the Set has them), CPUCOUNT, then one CPUSTAT
// per CPU with statistics, as trace-cmd record writes them ("CPU: N\n" and
// the text of per_cpu/cpuN/stats), which `trace-cmd report --stat` prints;
// last the Timeline's TRACEID, TIME_SHIFT and GUEST, when opts has one.
func Encode(s *meta.Set, cpus int, opts Options) []Option {
	var out []Option
	cstr := func(str string) []byte { return append([]byte(str), 0) }
	if opts.DateOffsetMicros != nil {
		out = append(out, Option{OptionDate, cstr("0x" + strconv.FormatInt(*opts.DateOffsetMicros, 16))})
	}
	if s.Clock != "" {
		out = append(out, Option{OptionTraceClock, cstr(s.Clock)})
	}
	if s.Uname != "" {
		out = append(out, Option{OptionUname, cstr(s.Uname)})
	}
	out = append(out, Option{OptionCPUCount, binary.LittleEndian.AppendUint32(nil, uint32(cpus))})
	for cpu := 0; cpu < cpus; cpu++ {
		st, ok := s.CPUStats[cpu]
		if !ok {
			continue
		}
		text := "CPU: " + strconv.Itoa(cpu) + "\n" + string(st)
		out = append(out, Option{OptionCPUStat, cstr(text)})
	}
	return append(out, opts.Timeline.options(cpus)...)
}

// encoder writes little-endian numbers and keeps the first error.
type encoder struct {
	w   *bufio.Writer
	err error
	buf [8]byte
}

func (e *encoder) bytes(b []byte) {
	if e.err == nil {
		_, e.err = e.w.Write(b)
	}
}
func (e *encoder) u8(v uint8) { e.bytes([]byte{v}) }
func (e *encoder) u16(v uint16) {
	binary.LittleEndian.PutUint16(e.buf[:], v)
	e.bytes(e.buf[:2])
}
func (e *encoder) u32(v uint32) {
	binary.LittleEndian.PutUint32(e.buf[:], v)
	e.bytes(e.buf[:4])
}
func (e *encoder) u64(v uint64) {
	binary.LittleEndian.PutUint64(e.buf[:], v)
	e.bytes(e.buf[:8])
}
func (e *encoder) sized32(b []byte) { e.u32(uint32(len(b))); e.bytes(b) }
func (e *encoder) sized64(b []byte) { e.u64(uint64(len(b))); e.bytes(b) }
func (e *encoder) flush() error {
	if e.err == nil {
		e.err = e.w.Flush()
	}
	if e.err != nil {
		return fmt.Errorf("write trace.dat header: %w", e.err)
	}
	return nil
}

type countWriter struct {
	w io.Writer
	n int64
}

func (c *countWriter) Write(p []byte) (int, error) {
	n, err := c.w.Write(p)
	c.n += int64(n)
	if err == nil && n < len(p) {
		err = io.ErrShortWrite
	}
	return n, err
}

var errNoCPU = errors.New("no CPU data")
