package tracedat

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/klauspost/compress/zstd"
)

// v7File is what decodeV7 finds in a version 7 file: a second, independent
// reading of the layout in docs/format.md.
type v7File struct {
	pageSize  uint32
	longSize  uint8
	compName  string
	compVer   string
	sections  []v7Section // in file order, walked from the header to EOF
	options   []Option
	strings   []byte
	buffer    v7Buffer
	cpuData   map[uint32][]byte // the CPUs' pages, decompressed
	chunks    map[uint32][]int  // per CPU the uncompressed size of each chunk
	sectionAt map[uint16]uint64 // from the section-offset options
}

type v7Section struct {
	id, flags uint16
	desc      uint32
	at        uint64 // offset of its header
	data      []byte // what follows the header, decompressed when flagged
	stored    uint64
}

type v7Buffer struct {
	section uint64
	name    string
	clock   string
	page    uint32
	cpus    []bufferCPU
}

func decodeV7(b []byte) (f v7File, err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("decode: out of bounds: %v", r)
		}
	}()
	dec, err := zstd.NewReader(nil)
	if err != nil {
		return f, err
	}
	defer dec.Close()
	r := &fileReader{b: b}
	take, u16, u32, u64, cstr := r.take, r.u16, r.u32, r.u64, r.cstr
	if f.longSize, f.pageSize, err = r.start("7"); err != nil {
		return f, err
	}
	f.compName, f.compVer = cstr(), cstr()
	optionsAt := u64()
	if optionsAt != uint64(r.p) {
		return f, fmt.Errorf("options at %d, the header ends at %d", optionsAt, r.p)
	}
	unzip := func(z []byte, size uint32) ([]byte, error) {
		out, err := dec.DecodeAll(z, nil)
		if err == nil && len(out) != int(size) {
			err = fmt.Errorf("%d bytes decompressed, header says %d", len(out), size)
		}
		return out, err
	}
	// The walk trace-cmd's reader does to find the strings: header after
	// header, each skipping its size, to the end of the file.
	for r.p < len(b) {
		sec := v7Section{at: uint64(r.p)}
		sec.id, sec.flags, sec.desc = u16(), u16(), u32()
		sec.stored = u64()
		raw := take(int(sec.stored))
		sec.data = raw
		if sec.flags&sectionCompressed != 0 && sec.id != OptionBuffer {
			zsize := binary.LittleEndian.Uint32(raw)
			size := binary.LittleEndian.Uint32(raw[4:])
			if int(zsize)+8 != len(raw) {
				return f, fmt.Errorf("section %d: %d compressed bytes in a section of %d", sec.id, zsize, len(raw))
			}
			if sec.data, err = unzip(raw[8:], size); err != nil {
				return f, fmt.Errorf("section %d: %w", sec.id, err)
			}
		}
		f.sections = append(f.sections, sec)
		if sec.id == OptionStrings {
			f.strings = append(f.strings, sec.data...)
		}
	}
	if len(f.sections) == 0 || f.sections[0].id != OptionDone {
		return f, errors.New("the first section is not the options")
	}

	// Options.
	f.sectionAt = map[uint16]uint64{}
	o := f.sections[0].data
	q := 0
	for {
		id := binary.LittleEndian.Uint16(o[q:])
		size := int(binary.LittleEndian.Uint32(o[q+2:]))
		data := o[q+6 : q+6+size]
		q += 6 + size
		if id == OptionDone {
			if size != 8 || binary.LittleEndian.Uint64(data) != 0 || q != len(o) {
				return f, fmt.Errorf("DONE option of %d bytes (%x) at %d of %d", size, data, q, len(o))
			}
			break
		}
		f.options = append(f.options, Option{id, data})
		switch {
		case id >= OptionHeaderInfo && id <= OptionCmdlines:
			f.sectionAt[id] = binary.LittleEndian.Uint64(data)
		case id == OptionBuffer:
			r := 0
			f.buffer.section = binary.LittleEndian.Uint64(data)
			r += 8
			name, _, _ := bytes.Cut(data[r:], []byte{0})
			f.buffer.name = string(name)
			r += len(name) + 1
			clock, _, _ := bytes.Cut(data[r:], []byte{0})
			f.buffer.clock = string(clock)
			r += len(clock) + 1
			f.buffer.page = binary.LittleEndian.Uint32(data[r:])
			n := int(binary.LittleEndian.Uint32(data[r+4:]))
			r += 8
			for i := 0; i < n; i++ {
				f.buffer.cpus = append(f.buffer.cpus, bufferCPU{
					cpu:    binary.LittleEndian.Uint32(data[r:]),
					offset: int64(binary.LittleEndian.Uint64(data[r+4:])),
					size:   int64(binary.LittleEndian.Uint64(data[r+12:])),
				})
				r += 20
			}
			if r != len(data) {
				return f, fmt.Errorf("BUFFER option of %d bytes, %d decoded", len(data), r)
			}
		}
	}

	// The CPUs' data, where the BUFFER option says.
	var fly *v7Section
	for i := range f.sections {
		if f.sections[i].at == f.buffer.section {
			fly = &f.sections[i]
		}
	}
	if fly == nil || fly.id != OptionBuffer {
		return f, fmt.Errorf("BUFFER option points at %d: no flyrecord section there", f.buffer.section)
	}
	f.cpuData = map[uint32][]byte{}
	f.chunks = map[uint32][]int{}
	for _, c := range f.buffer.cpus {
		if c.offset < int64(fly.at)+sectionHeader || c.offset+c.size > int64(fly.at)+sectionHeader+int64(fly.stored) {
			return f, fmt.Errorf("CPU %d data [%d, +%d) outside its section", c.cpu, c.offset, c.size)
		}
		data := b[c.offset : c.offset+c.size]
		if fly.flags&sectionCompressed == 0 {
			f.cpuData[c.cpu] = data
			continue
		}
		count := binary.LittleEndian.Uint32(data)
		r := 4
		var pages []byte
		for i := uint32(0); i < count; i++ {
			zsize := int(binary.LittleEndian.Uint32(data[r:]))
			size := binary.LittleEndian.Uint32(data[r+4:])
			out, err := unzip(data[r+8:r+8+zsize], size)
			if err != nil {
				return f, fmt.Errorf("CPU %d chunk %d: %w", c.cpu, i, err)
			}
			pages = append(pages, out...)
			f.chunks[c.cpu] = append(f.chunks[c.cpu], int(size))
			r += 8 + zsize
		}
		if r != len(data) {
			return f, fmt.Errorf("CPU %d: %d bytes of chunks in %d", c.cpu, r, len(data))
		}
		f.cpuData[c.cpu] = pages
	}
	return f, nil
}

// description is a section's name from the strings section.
func (f *v7File) description(sec v7Section) string {
	if int(sec.desc) >= len(f.strings) {
		return fmt.Sprintf("<bad string id %d>", sec.desc)
	}
	name, _, _ := bytes.Cut(f.strings[sec.desc:], []byte{0})
	return string(name)
}

func TestWriteV7Layout(t *testing.T) {
	s := fixtureSet(t)
	s.Kallsyms = []byte(strings.Repeat("ffffffff81000000 T _text\n", 100))
	dir := t.TempDir()
	// CPU 0: 53 pages, so chunks of 10 pages and one of 3 (more than the
	// compressing goroutines keep in flight), and a partial page left out;
	// CPU 1: none; CPU 2: 2 pages.
	cpu0, cpu2 := pages(53, 100, 1), pages(2, 0, 2)
	for i := 0; i < 53; i++ { // pages that differ, so order counts
		binary.LittleEndian.PutUint64(cpu0[i*4096:], uint64(i))
	}
	os.WriteFile(filepath.Join(dir, "cpu0.raw"), cpu0, 0o644)
	os.WriteFile(filepath.Join(dir, "cpu2.raw"), cpu2, 0o644)
	cpus, err := CaptureCPUs(dir)
	if err != nil {
		t.Fatal(err)
	}
	// The v6 header holds the same metadata encodings, one after another.
	var v6 bytes.Buffer
	if _, err := WriteHeader(&v6, s, []int64{0, 0, 0}, Options{}); err != nil {
		t.Fatal(err)
	}
	d6, err := decodeHeader(v6.Bytes())
	if err != nil {
		t.Fatal(err)
	}
	// From the end of the v6 fixed header (18 bytes) to its u32 CPU count.
	metaLen := int64(0)
	for _, b := range []*body{&metaBodies(s).headers, &metaBodies(s).ftrace, &metaBodies(s).events, &metaBodies(s).kallsyms, &metaBodies(s).printk, &metaBodies(s).cmdlines} {
		metaLen += b.n
	}
	v6meta := v6.Bytes()[18 : 18+metaLen]
	if binary.LittleEndian.Uint32(v6.Bytes()[18+metaLen:]) != d6.cpus {
		t.Fatalf("the v6 metadata does not end at the CPU count")
	}

	for _, comp := range []Compression{CompressNone, CompressZstd} {
		t.Run(string(comp), func(t *testing.T) {
			dat := filepath.Join(dir, "trace-"+string(comp)+".dat")
			date := int64(7)
			res, err := WriteFile(dat, s, cpus, Options{Format: FormatV7, Compression: comp, DateOffsetMicros: &date}, false)
			if err != nil {
				t.Fatal(err)
			}
			b, err := os.ReadFile(dat)
			if err != nil {
				t.Fatal(err)
			}
			f, err := decodeV7(b)
			if err != nil {
				t.Fatal(err)
			}
			if res.Size != int64(len(b)) || res.Format != FormatV7 || res.Compression != comp {
				t.Errorf("result %+v for a file of %d bytes", res, len(b))
			}
			if f.pageSize != 4096 || f.longSize != 8 || f.compName != string(comp) {
				t.Errorf("header: page %d, long %d, compression %q", f.pageSize, f.longSize, f.compName)
			}
			if (comp == CompressNone) != (f.compVer == "") {
				t.Errorf("compression %q with version %q", f.compName, f.compVer)
			}

			// Sections: options first, the strings, the metadata, the
			// flyrecord last; each flagged compressed exactly when the file is.
			var ids []uint16
			var names []string
			for _, sec := range f.sections {
				ids = append(ids, sec.id)
				names = append(names, f.description(sec))
				wantFlags := uint16(0)
				if comp != CompressNone && sec.id != OptionDone {
					wantFlags = sectionCompressed
				}
				if sec.flags != wantFlags {
					t.Errorf("section %d flags %d, want %d", sec.id, sec.flags, wantFlags)
				}
			}
			wantIDs := []uint16{OptionDone, OptionStrings, OptionHeaderInfo, OptionFtraceEvents, OptionEventFormats,
				OptionKallsyms, OptionPrintk, OptionCmdlines, OptionBuffer}
			if !reflect.DeepEqual(ids, wantIDs) {
				t.Fatalf("section ids %v, want %v", ids, wantIDs)
			}
			wantNames := []string{"options", "strings", "headers", "ftrace events", "events format", "kallsyms", "printk", "command lines", "buffer flyrecord "}
			if !reflect.DeepEqual(names, wantNames) {
				t.Errorf("section names %q, want %q", names, wantNames)
			}

			// Each offset option points at its section; the metadata
			// sections together are the v6 encodings.
			var meta []byte
			for _, sec := range f.sections[2:8] {
				if f.sectionAt[sec.id] != sec.at {
					t.Errorf("option %d points at %d, section is at %d", sec.id, f.sectionAt[sec.id], sec.at)
				}
				meta = append(meta, sec.data...)
			}
			if !bytes.Equal(meta, v6meta) {
				t.Errorf("metadata sections (%d bytes) differ from the v6 encodings (%d bytes)", len(meta), len(v6meta))
			}

			var optIDs []uint16
			for _, o := range f.options {
				optIDs = append(optIDs, o.ID)
			}
			wantOpts := []uint16{OptionDate, OptionTraceClock, OptionUname, OptionCPUCount, OptionCPUStat, OptionCPUStat,
				OptionHeaderInfo, OptionFtraceEvents, OptionEventFormats, OptionKallsyms, OptionPrintk, OptionCmdlines, OptionBuffer}
			if !reflect.DeepEqual(optIDs, wantOpts) {
				t.Errorf("option ids %v, want %v", optIDs, wantOpts)
			}

			// BUFFER: the top instance, its clock, CPUs with data only,
			// page-aligned, as the Result says; pages as they were.
			fly := f.sections[len(f.sections)-1]
			if f.buffer.section != fly.at || f.buffer.name != "" || f.buffer.clock != "local" || f.buffer.page != 4096 {
				t.Errorf("BUFFER option %+v, flyrecord section at %d", f.buffer, fly.at)
			}
			want := []bufferCPU{{0, res.CPUs[0].Offset, res.CPUs[0].Stored}, {2, res.CPUs[2].Offset, res.CPUs[2].Stored}}
			if !reflect.DeepEqual(f.buffer.cpus, want) {
				t.Errorf("BUFFER CPUs %+v, want %+v", f.buffer.cpus, want)
			}
			for _, c := range f.buffer.cpus {
				if c.offset%4096 != 0 {
					t.Errorf("CPU %d data at %d: not page-aligned", c.cpu, c.offset)
				}
			}
			if !bytes.Equal(f.cpuData[0], cpu0[:53*4096]) || !bytes.Equal(f.cpuData[2], cpu2) {
				t.Errorf("CPU pages differ from the input (%d and %d bytes)", len(f.cpuData[0]), len(f.cpuData[2]))
			}
			if res.CPUs[0].Size != 53*4096 || res.CPUs[0].Dropped != 100 || res.CPUs[1].Size != 0 || res.CPUs[2].Size != 2*4096 {
				t.Errorf("result CPUs %+v", res.CPUs)
			}
			if comp == CompressNone {
				if res.CPUs[0].Stored != res.CPUs[0].Size {
					t.Errorf("uncompressed CPU 0 stores %d of %d bytes", res.CPUs[0].Stored, res.CPUs[0].Size)
				}
				return
			}
			if got, want := f.chunks[0], []int{10 * 4096, 10 * 4096, 10 * 4096, 10 * 4096, 10 * 4096, 3 * 4096}; !reflect.DeepEqual(got, want) {
				t.Errorf("CPU 0 chunks %v, want %v", got, want)
			}
			if res.CPUs[0].Stored >= res.CPUs[0].Size {
				t.Errorf("compressed CPU 0 stores %d bytes for %d of patterned pages", res.CPUs[0].Stored, res.CPUs[0].Size)
			}
		})
	}
}

func TestWriteV7Outputs(t *testing.T) {
	s := fixtureSet(t)
	cpu0 := pages(3, 0, 5)
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "cpu0.raw"), cpu0, 0o644)
	cpus, err := CaptureCPUs(dir)
	if err != nil {
		t.Fatal(err)
	}
	v7 := Options{Format: FormatV7}
	dat := filepath.Join(dir, "trace.dat")
	if _, err := WriteFile(dat, s, cpus, v7, false); err != nil {
		t.Fatal(err)
	}
	fromFile, _ := os.ReadFile(dat)

	// Uncompressed, every offset is known up front: a plain io.Writer
	// and a reader give the same bytes as a file and copy_file_range.
	var buf bytes.Buffer
	if _, err := Write(&buf, s, []CPUData{{CPU: 0, R: bytes.NewReader(cpu0), Size: int64(len(cpu0))}}, v7); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(buf.Bytes(), fromFile) {
		t.Errorf("v7 through an io.Writer (%d bytes) differs from the file (%d bytes)", buf.Len(), len(fromFile))
	}

	// Compressed needs to seek back: a plain writer is refused before
	// anything is written.
	buf.Reset()
	zstdOpts := Options{Compression: CompressZstd}
	_, err = Write(&buf, s, []CPUData{{CPU: 0, R: bytes.NewReader(cpu0), Size: int64(len(cpu0))}}, zstdOpts)
	if err == nil || !strings.Contains(err.Error(), "seek") || buf.Len() != 0 {
		t.Errorf("zstd into a bytes.Buffer: %v, %d bytes written", err, buf.Len())
	}

	// Compression alone selects v7; a reader shorter than its Size fails.
	res, err := WriteFile(dat, s, cpus, zstdOpts, true)
	if err != nil || res.Format != FormatV7 || res.Compression != CompressZstd {
		t.Errorf("WriteFile with zstd only: %+v, %v", res, err)
	}
	f, err := os.Create(filepath.Join(dir, "short.dat"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	short := CPUData{R: bytes.NewReader(pages(1, 0, 0)), Size: 2 * 4096}
	if _, err := Write(f, s, []CPUData{short}, zstdOpts); err == nil || !strings.Contains(err.Error(), "early") {
		t.Errorf("zstd from a reader shorter than its Size: %v", err)
	}
}

func TestParseFormat(t *testing.T) {
	for _, c := range []struct {
		format, compress string
		f                Format
		c                Compression
	}{
		{"", "", FormatV6, CompressNone},
		{"v6", "", FormatV6, CompressNone},
		{"6", "none", FormatV6, CompressNone},
		{"v7", "", FormatV7, CompressNone},
		{"V7", "zstd", FormatV7, CompressZstd},
		{"", "zstd", FormatV7, CompressZstd},
	} {
		f, comp, err := ParseFormat(c.format, c.compress)
		if err != nil || f != c.f || comp != c.c {
			t.Errorf("ParseFormat(%q, %q) = %v, %q, %v; want %v, %q", c.format, c.compress, f, comp, err, c.f, c.c)
		}
	}
	for _, c := range [][2]string{{"v6", "zstd"}, {"v5", ""}, {"v8", ""}, {"", "gzip"}, {"v7", "zlib"}} {
		if _, _, err := ParseFormat(c[0], c[1]); !errors.Is(err, ErrFormat) {
			t.Errorf("ParseFormat(%q, %q): %v, want ErrFormat", c[0], c[1], err)
		}
	}
	s := fixtureSet(t)
	r := []CPUData{{R: bytes.NewReader(nil)}}
	for _, o := range []Options{{Format: FormatV6, Compression: CompressZstd}, {Format: 8}, {Compression: "lz4"}} {
		if _, err := Write(&bytes.Buffer{}, s, r, o); !errors.Is(err, ErrFormat) {
			t.Errorf("Write with %+v: %v, want ErrFormat", o, err)
		}
	}
	if _, err := WriteHeader(&bytes.Buffer{}, s, []int64{0}, Options{Format: FormatV7}); !errors.Is(err, ErrFormat) {
		t.Errorf("WriteHeader asked for v7: %v, want ErrFormat", err)
	}
}
