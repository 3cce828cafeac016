package tracedat

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math"
	"runtime"

	"github.com/klauspost/compress/zstd"

	"github.com/vtrace/vtrace/host/meta"
)

// Version 7 (trace-cmd's Documentation/trace-cmd/trace-cmd.dat.v7.5.txt,
// checked against trace-cmd 3.1.6's reader), as vtrace lays it out:
//
//	magic "\x17\x08Dtracing" "7\0", endian, long size, u32 page size,
//	compression name "\0" version "\0", u64 offset of the options section
//	options section        (id 0; never compressed)
//	strings section        (id 15: the section descriptions)
//	headers, ftrace events, events format, kallsyms, printk, command lines
//	                       (ids 16..21, each pointed to by its option)
//	buffer flyrecord       (id 3, pointed to by the BUFFER option): each
//	                       CPU's data at a page-aligned offset
//
// Every section starts with u16 id, u16 flags (1: compressed), u32 offset
// of its description in the strings, u64 size of what follows. The reader
// finds the strings by walking the sections from the end of the file
// header to the end of the file, so the sections follow each other with no
// gap. A compressed metadata section holds u32 compressed size, u32 size,
// then one zstd frame; a compressed CPU holds u32 chunk count, then per
// chunk u32 compressed size, u32 size (whole pages, ChunkPages at most),
// one zstd frame.

var magic7 = []byte{0x17, 0x08, 0x44, 't', 'r', 'a', 'c', 'i', 'n', 'g', '7', 0}

const (
	sectionCompressed = 1  // section flag
	sectionHeader     = 16 // u16 id, u16 flags, u32 description, u64 size
	optionHeader      = 6  // u16 id, u32 size
)

// metaSection is one metadata section of a version 7 file.
type metaSection struct {
	id   uint16
	desc uint32 // offset of its description in the strings
	raw  body
	z    []byte // the zstd frame of raw, when compressed
}

// stored is the size of the section after its header.
func (m *metaSection) stored() int64 {
	if m.z != nil {
		return 8 + int64(len(m.z))
	}
	return m.raw.n
}

// bufferCPU is one CPU entry of the BUFFER option.
type bufferCPU struct {
	cpu          uint32
	offset, size int64
}

// bufferOption is the data of the BUFFER option of the top instance:
// u64 offset of the flyrecord section, the instance name "" and the
// selected clock (NUL-terminated), u32 page size, u32 count, then per CPU
// that has data u32 id, u64 offset, u64 size in the file.
func bufferOption(section int64, clock string, page int64, cpus []bufferCPU) []byte {
	b := binary.LittleEndian.AppendUint64(nil, uint64(section))
	b = append(b, 0)
	b = append(append(b, clock...), 0)
	b = binary.LittleEndian.AppendUint32(b, uint32(page))
	b = binary.LittleEndian.AppendUint32(b, uint32(len(cpus)))
	for _, c := range cpus {
		b = binary.LittleEndian.AppendUint32(b, c.cpu)
		b = binary.LittleEndian.AppendUint64(b, uint64(c.offset))
		b = binary.LittleEndian.AppendUint64(b, uint64(c.size))
	}
	return b
}

func alignUp(n, page int64) int64 { return (n + page - 1) / page * page }

// writeV7 writes a version 7 file of in's pages to w.
func writeV7(w io.Writer, s *meta.Set, in *inputs, opts Options, comp Compression) (Result, error) {
	fail := func(err error) (Result, error) { return Result{}, fmt.Errorf("write trace.dat v7: %w", err) }
	if err := s.Validate(); err != nil {
		return fail(err)
	}
	l, err := s.Layout()
	if err != nil {
		return fail(err)
	}
	page := in.page
	var wa io.WriterAt
	var enc *zstd.Encoder
	version := ""
	if comp == CompressZstd {
		var ok bool
		if wa, ok = w.(io.WriterAt); !ok {
			return fail(errors.New("a compressed file needs an output file it can seek in"))
		}
		enc, err = zstd.NewWriter(nil, zstd.WithEncoderLevel(zstd.SpeedDefault))
		if err != nil {
			return fail(err)
		}
		defer enc.Close()
		version = zstdVersion()
	}

	// Section descriptions, in the strings section.
	var strs body
	ids := map[string]uint32{}
	name := func(s string) uint32 {
		if id, ok := ids[s]; ok {
			return id
		}
		ids[s] = uint32(strs.n)
		strs.cstr(s)
		return ids[s]
	}
	optionsDesc := name("options")
	m := metaBodies(s)
	secs := []*metaSection{
		{id: OptionStrings, desc: name("strings")},
		{id: OptionHeaderInfo, desc: name("headers"), raw: m.headers},
		{id: OptionFtraceEvents, desc: name("ftrace events"), raw: m.ftrace},
		{id: OptionEventFormats, desc: name("events format"), raw: m.events},
		{id: OptionKallsyms, desc: name("kallsyms"), raw: m.kallsyms},
		{id: OptionPrintk, desc: name("printk"), raw: m.printk},
		{id: OptionCmdlines, desc: name("command lines"), raw: m.cmdlines},
	}
	flyDesc := name("buffer flyrecord ")
	secs[0].raw = strs
	if enc != nil {
		for _, sec := range secs {
			if sec.raw.n > math.MaxUint32 {
				return fail(fmt.Errorf("section %d of %d bytes: more than a compressed section can hold", sec.id, sec.raw.n))
			}
			sec.z = enc.EncodeAll(sec.raw.bytes(), nil)
			if int64(len(sec.z)) > math.MaxUint32 {
				return fail(fmt.Errorf("section %d compresses to %d bytes: more than a compressed section can hold", sec.id, len(sec.z)))
			}
		}
	}

	// The plan: every offset but those of compressed CPU data is known
	// before the first byte is written.
	var head body
	head.add(magic7)
	head.add([]byte{0, uint8(l.CommitSize)}) // little-endian, long size
	head.u32(uint32(l.PageSize))
	head.cstr(string(comp))
	head.cstr(version)
	optionsAt := head.n + 8
	head.u64(uint64(optionsAt))

	clock := s.SelectedClock()
	if clock == "" {
		clock = "local" // what trace-cmd writes when it knows no clock
	}
	base := Encode(s, len(in.sizes), opts)
	var withData []int
	for cpu, n := range in.sizes {
		if n > 0 {
			withData = append(withData, cpu)
		}
	}
	bufCPUs := make([]bufferCPU, len(withData))
	for i, cpu := range withData {
		bufCPUs[i].cpu = uint32(cpu)
	}
	optionsLen := int64(sectionHeader)
	for _, o := range base {
		optionsLen += optionHeader + int64(len(o.Data))
	}
	optionsLen += int64(len(secs)-1) * (optionHeader + 8)
	optionsLen += optionHeader + int64(len(bufferOption(0, clock, page, bufCPUs)))
	optionsLen += optionHeader + 8 // DONE
	secAt := make([]int64, len(secs))
	at := optionsAt + optionsLen
	for i, sec := range secs {
		secAt[i] = at
		at += sectionHeader + sec.stored()
	}
	flyAt := at
	res := in.result()
	res.Format, res.Compression = FormatV7, comp
	flySize := int64(0) // known now when not compressed
	if enc == nil {
		pos := flyAt + sectionHeader
		for cpu, n := range in.sizes {
			res.CPUs[cpu].Offset = alignUp(pos, page)
			res.CPUs[cpu].Stored = n
			if n > 0 {
				pos = res.CPUs[cpu].Offset + n
			}
		}
		flySize = pos - (flyAt + sectionHeader)
		for i, cpu := range withData {
			bufCPUs[i].offset, bufCPUs[i].size = res.CPUs[cpu].Offset, in.sizes[cpu]
		}
	}

	cw := &countWriter{w: w}
	e := &encoder{w: bufio.NewWriterSize(cw, 1<<16)}
	pos := func() int64 { return cw.n + int64(e.w.Buffered()) }
	for _, p := range head.parts {
		e.bytes(p)
	}

	// Options.
	e.u16(OptionDone)
	e.u16(0)
	e.u32(optionsDesc)
	e.u64(uint64(optionsLen - sectionHeader))
	for _, o := range base {
		e.u16(o.ID)
		e.u32(uint32(len(o.Data)))
		e.bytes(o.Data)
	}
	for i, sec := range secs[1:] {
		e.u16(sec.id)
		e.u32(8)
		e.u64(uint64(secAt[i+1]))
	}
	buf := bufferOption(flyAt, clock, page, bufCPUs)
	e.u16(OptionBuffer)
	e.u32(uint32(len(buf)))
	bufAt := pos()
	e.bytes(buf)
	e.u16(OptionDone)
	e.u32(8)
	e.u64(0) // no further options section

	// Metadata sections.
	for i, sec := range secs {
		if e.err == nil && pos() != secAt[i] {
			return fail(fmt.Errorf("section %d at %d, planned at %d", sec.id, pos(), secAt[i]))
		}
		flags := uint16(0)
		if sec.z != nil {
			flags = sectionCompressed
		}
		e.u16(sec.id)
		e.u16(flags)
		e.u32(sec.desc)
		e.u64(uint64(sec.stored()))
		if sec.z != nil {
			e.u32(uint32(len(sec.z)))
			e.u32(uint32(sec.raw.n))
			e.bytes(sec.z)
			continue
		}
		for _, p := range sec.raw.parts {
			e.bytes(p)
		}
	}

	// The flyrecord section: each CPU's data at a page boundary.
	if e.err == nil && pos() != flyAt {
		return fail(fmt.Errorf("flyrecord section at %d, planned at %d", pos(), flyAt))
	}
	flags := uint16(0)
	if enc != nil {
		flags = sectionCompressed
	}
	e.u16(OptionBuffer)
	e.u16(flags)
	e.u32(flyDesc)
	flySizeAt := pos()
	e.u64(uint64(flySize))
	var chunks *chunker
	var copyBuf []byte
	if enc != nil {
		chunks = newChunker(enc, page)
	} else {
		copyBuf = newCopyBuf(page)
	}
	for cpu, n := range in.sizes {
		off := alignUp(pos(), page)
		if n == 0 {
			res.CPUs[cpu].Offset = off
			continue
		}
		if enc == nil && off != res.CPUs[cpu].Offset {
			return fail(fmt.Errorf("CPU %d data at %d, planned at %d", cpu, off, res.CPUs[cpu].Offset))
		}
		res.CPUs[cpu].Offset = off
		e.bytes(make([]byte, off-pos()))
		if enc == nil {
			if err := e.flush(); err != nil {
				return fail(err)
			}
			if err := copyChecked(w, in.src[cpu], n, in.check(&res, cpu), copyBuf); err != nil {
				return fail(fmt.Errorf("copy CPU %d pages: %w", cpu, err))
			}
			cw.n += n
			continue
		}
		stored, err := chunks.write(e, in.src[cpu], n, in.check(&res, cpu))
		if err != nil {
			return fail(fmt.Errorf("compress CPU %d pages: %w", cpu, err))
		}
		res.CPUs[cpu].Stored = stored
	}
	if err := e.flush(); err != nil {
		return fail(err)
	}
	res.Size = cw.n
	if enc == nil {
		if want := flyAt + sectionHeader + flySize; res.Size != want {
			return fail(fmt.Errorf("wrote %d bytes, planned %d", res.Size, want))
		}
		return res, nil
	}

	// Fill in what compression decided: the flyrecord section's size and
	// the CPUs' offsets and sizes in the BUFFER option (same length).
	for i, cpu := range withData {
		bufCPUs[i].offset, bufCPUs[i].size = res.CPUs[cpu].Offset, res.CPUs[cpu].Stored
	}
	if err := writeAt(wa, binary.LittleEndian.AppendUint64(nil, uint64(res.Size-flySizeAt-8)), flySizeAt); err != nil {
		return fail(err)
	}
	if err := writeAt(wa, bufferOption(flyAt, clock, page, bufCPUs), bufAt); err != nil {
		return fail(err)
	}
	return res, nil
}

func writeAt(wa io.WriterAt, b []byte, off int64) error {
	if _, err := wa.WriteAt(b, off); err != nil {
		return fmt.Errorf("fill in offset %d: %w", off, err)
	}
	return nil
}

// chunker compresses a CPU's pages a chunk at a time, on as many
// goroutines as GOMAXPROCS, writing the chunks in order. At most 2 chunks
// per worker are in flight: memory stays bounded whatever the size.
type chunker struct {
	enc     *zstd.Encoder
	chunk   int64
	workers int
	free    []*chunkJob
}

type chunkJob struct {
	in, out []byte
	done    chan struct{}
}

func newChunker(enc *zstd.Encoder, page int64) *chunker {
	return &chunker{enc: enc, chunk: ChunkPages * page, workers: runtime.GOMAXPROCS(0)}
}

// write reads exactly n bytes (whole pages) from src, checks them with
// chk, and writes them as u32 chunk count and chunks. It returns the bytes
// written.
func (c *chunker) write(e *encoder, src io.Reader, n int64, chk *pageCheck) (stored int64, err error) {
	count := (n + c.chunk - 1) / c.chunk
	if count > math.MaxUint32 {
		return 0, fmt.Errorf("%d chunks: more than a CPU can hold", count)
	}
	e.u32(uint32(count))
	stored = 4

	jobs := make(chan *chunkJob)
	for range c.workers {
		go func() {
			for j := range jobs {
				j.out = c.enc.EncodeAll(j.in, j.out[:0])
				close(j.done)
			}
		}()
	}
	var queue []*chunkJob
	defer func() {
		close(jobs)
		for _, j := range queue {
			<-j.done
			c.free = append(c.free, j)
		}
	}()
	// emit writes the oldest chunk once compressed.
	emit := func() error {
		j := queue[0]
		<-j.done
		queue = queue[1:]
		e.u32(uint32(len(j.out)))
		e.u32(uint32(len(j.in)))
		e.bytes(j.out)
		stored += 8 + int64(len(j.out))
		c.free = append(c.free, j)
		return e.err
	}
	for left := n; left > 0; {
		k := min(left, c.chunk)
		var j *chunkJob
		if len(c.free) > 0 {
			j, c.free = c.free[len(c.free)-1], c.free[:len(c.free)-1]
		} else {
			j = &chunkJob{in: make([]byte, c.chunk)}
		}
		j.in = j.in[:k]
		if m, err := io.ReadFull(src, j.in); err != nil {
			c.free = append(c.free, j)
			if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
				return 0, fmt.Errorf("input ended %d bytes early", left-int64(m))
			}
			return 0, err
		}
		chk.pages(j.in)
		j.done = make(chan struct{})
		jobs <- j
		queue = append(queue, j)
		left -= k
		if len(queue) == 2*c.workers {
			if err := emit(); err != nil {
				return 0, err
			}
		}
	}
	for len(queue) > 0 {
		if err := emit(); err != nil {
			return 0, err
		}
	}
	return stored, nil
}
