package tracedat

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/vtrace/vtrace/host/meta"
)

const metaFixture = "../meta/testdata/tracefs"

// decoded is what decodeHeader finds in a trace.dat: a second, independent
// reading of the layout in docs/format.md.
type decoded struct {
	pageSize    uint32
	longSize    uint8
	ftrace      int
	systems     map[string]int
	kallsyms    int
	cpus        uint32
	options     []Option
	offsets     []uint64
	sizes       []uint64
	clock       string
	headerBytes int
}

// fileReader reads a trace.dat's little-endian fields in order; reading
// past the end panics, which the decoders recover into an error.
type fileReader struct {
	b []byte
	p int // the offset of the next byte
}

func (r *fileReader) take(n int) []byte { r.p += n; return r.b[r.p-n : r.p] }
func (r *fileReader) u16() uint16       { return binary.LittleEndian.Uint16(r.take(2)) }
func (r *fileReader) u32() uint32       { return binary.LittleEndian.Uint32(r.take(4)) }
func (r *fileReader) u64() uint64       { return binary.LittleEndian.Uint64(r.take(8)) }

func (r *fileReader) cstr() string {
	i := bytes.IndexByte(r.b[r.p:], 0)
	return string(r.take(i + 1)[:i])
}

// start reads the initial format that every version shares: magic,
// version (which must be version), endianness (little), long size and
// page size.
func (r *fileReader) start(version string) (longSize uint8, pageSize uint32, err error) {
	if !bytes.Equal(r.take(3), []byte{0x17, 0x08, 0x44}) || string(r.take(7)) != "tracing" || r.cstr() != version {
		return 0, 0, errors.New("bad magic or version")
	}
	if r.take(1)[0] != 0 {
		return 0, 0, errors.New("not little-endian")
	}
	return r.take(1)[0], r.u32(), nil
}

func decodeHeader(b []byte) (d decoded, err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("decode: out of bounds: %v", r)
		}
	}()
	r := &fileReader{b: b}
	take, u16, u32, u64, cstr := r.take, r.u16, r.u32, r.u64, r.cstr
	if d.longSize, d.pageSize, err = r.start("6"); err != nil {
		return d, err
	}
	if cstr() != "header_page" {
		return d, errors.New("no header_page")
	}
	take(int(u64()))
	if cstr() != "header_event" {
		return d, errors.New("no header_event")
	}
	take(int(u64()))
	d.ftrace = int(u32())
	for i := 0; i < d.ftrace; i++ {
		take(int(u64()))
	}
	d.systems = map[string]int{}
	for n := u32(); n > 0; n-- {
		name := cstr()
		k := int(u32())
		d.systems[name] = k
		for i := 0; i < k; i++ {
			take(int(u64()))
		}
	}
	d.kallsyms = int(u32())
	take(d.kallsyms)
	take(int(u32())) // printk
	take(int(u64())) // cmdlines
	d.cpus = u32()
	if string(take(10)) != "options  \x00" {
		return d, errors.New("no options")
	}
	for {
		id := u16()
		if id == OptionDone {
			break
		}
		d.options = append(d.options, Option{id, take(int(u32()))})
	}
	if string(take(10)) != "flyrecord\x00" {
		return d, errors.New("no flyrecord")
	}
	for i := uint32(0); i < d.cpus; i++ {
		d.offsets = append(d.offsets, u64())
		d.sizes = append(d.sizes, u64())
	}
	for _, o := range d.options {
		if o.ID == OptionTraceClock {
			d.clock = string(take(int(u64())))
		}
	}
	for r.p < len(b) && r.p%int(d.pageSize) != 0 {
		if take(1)[0] != 0 {
			return d, errors.New("padding is not zero")
		}
	}
	d.headerBytes = r.p
	return d, nil
}

func fixtureSet(t testing.TB) *meta.Set {
	t.Helper()
	s, err := meta.Load(metaFixture)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func TestWriteHeaderLayout(t *testing.T) {
	s := fixtureSet(t)
	s.Kallsyms = []byte("ffffffff81000000 T _text\n")
	var buf bytes.Buffer
	date := int64(-5)
	offsets, err := WriteHeader(&buf, s, []int64{2 * 4096, 0, 4096}, Options{DateOffsetMicros: &date})
	if err != nil {
		t.Fatal(err)
	}
	d, err := decodeHeader(buf.Bytes())
	if err != nil {
		t.Fatal(err)
	}
	if d.headerBytes != buf.Len() || int64(buf.Len()) != offsets[0] || offsets[0]%4096 != 0 {
		t.Errorf("header of %d bytes, decoded %d, first offset %d", buf.Len(), d.headerBytes, offsets[0])
	}
	if diff := cmp.Diff([]int64{offsets[0], offsets[0] + 8192, offsets[0] + 8192}, offsets); diff != "" {
		t.Errorf("offsets (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff([]uint64{8192, 0, 4096}, d.sizes); diff != "" || d.offsets[2] != uint64(offsets[2]) {
		t.Errorf("CPU table: offsets %v; sizes (-want +got):\n%s", d.offsets, diff)
	}
	if d.pageSize != 4096 || d.longSize != 8 || d.cpus != 3 || d.ftrace != 2 || d.kallsyms != len(s.Kallsyms) {
		t.Errorf("decoded %+v", d)
	}
	if diff := cmp.Diff(map[string]int{"irq": 1, "sched": 2}, d.systems); diff != "" {
		t.Errorf("systems (-want +got):\n%s", diff)
	}
	if d.clock != s.Clock {
		t.Errorf("clock after the CPU table %q, want %q", d.clock, s.Clock)
	}
	var ids []uint16
	texts := map[uint16][]string{}
	for _, o := range d.options {
		ids = append(ids, o.ID)
		texts[o.ID] = append(texts[o.ID], string(o.Data))
	}
	if diff := cmp.Diff([]uint16{OptionDate, OptionTraceClock, OptionUname, OptionCPUCount, OptionCPUStat, OptionCPUStat}, ids); diff != "" {
		t.Errorf("option ids (-want +got):\n%s", diff)
	}
	if texts[OptionDate][0] != "0x-5\x00" || texts[OptionUname][0] != s.Uname+"\x00" ||
		texts[OptionCPUCount][0] != "\x03\x00\x00\x00" ||
		!strings.HasPrefix(texts[OptionCPUStat][1], "CPU: 1\nentries:") || !strings.HasSuffix(texts[OptionCPUStat][1], "\n\x00") {
		t.Errorf("option contents %v", texts)
	}
}

// pages makes n valid 4 KiB ring-buffer pages, full of events whose
// payloads follow a pattern from base, plus extra trailing bytes.
func pages(n, extra int, base byte) []byte {
	b := make([]byte, 0, n*4096+extra)
	for i := range n {
		p := make([]byte, 4096)
		binary.LittleEndian.PutUint64(p, uint64(1000*(i+1)))
		data := p[16:]
		off := 0
		for ; off+20 <= len(data); off += 20 { // type_len 4: a 16-byte payload
			binary.LittleEndian.PutUint32(data[off:], 4|1<<5)
			for k := range 16 {
				data[off+4+k] = base + byte((i+off+k)*7)
			}
		}
		binary.LittleEndian.PutUint64(p[8:], uint64(off))
		b = append(b, p...)
	}
	for i := range extra {
		b = append(b, base+byte(i*7))
	}
	return b
}

// garbage is a page the page reader refuses: its commit runs past the page.
func garbage(base byte) []byte {
	p := make([]byte, 4096)
	for i := range p {
		p[i] = base + byte(i*13)
	}
	binary.LittleEndian.PutUint64(p[8:], 0x7ffffff)
	return p
}

func TestWriteFileMatchesWriter(t *testing.T) {
	s := fixtureSet(t)
	dir := t.TempDir()
	cpu0, cpu2 := pages(3, 100, 1), pages(2, 0, 2)
	os.WriteFile(filepath.Join(dir, "cpu0.raw"), cpu0, 0o644)
	os.WriteFile(filepath.Join(dir, "cpu2.raw"), cpu2, 0o644)
	cpus, err := CaptureCPUs(dir)
	if err != nil {
		t.Fatal(err)
	}
	dat := filepath.Join(dir, "trace.dat")
	res, err := WriteFile(dat, s, cpus, Options{}, false)
	if err != nil {
		t.Fatal(err)
	}
	fromFile, _ := os.ReadFile(dat)

	// The same through a plain io.Writer and readers: the fallback path.
	var buf bytes.Buffer
	res2, err := Write(&buf, s, []CPUData{
		{CPU: 2, R: bytes.NewReader(cpu2), Size: int64(len(cpu2))},
		{CPU: 0, R: bytes.NewReader(cpu0), Size: int64(len(cpu0))},
	}, Options{})
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(res, res2); !bytes.Equal(fromFile, buf.Bytes()) || diff != "" {
		t.Fatalf("copy_file_range and io.Writer outputs differ: %d vs %d bytes; results (-file +writer):\n%s", len(fromFile), buf.Len(), diff)
	}
	want := []CPUResult{
		{CPU: 0, Offset: res.CPUs[0].Offset, Size: 3 * 4096, Stored: 3 * 4096, Dropped: 100},
		{CPU: 1, Offset: res.CPUs[0].Offset + 3*4096},
		{CPU: 2, Offset: res.CPUs[0].Offset + 3*4096, Size: 2 * 4096, Stored: 2 * 4096},
	}
	if diff := cmp.Diff(want, res.CPUs); diff != "" || res.Size != int64(len(fromFile)) || res.Format != FormatV6 || res.Compression != CompressNone {
		t.Errorf("result size %d, file %d bytes, format %v, compression %v; CPUs (-want +got):\n%s", res.Size, len(fromFile), res.Format, res.Compression, diff)
	}
	if got := fromFile[res.CPUs[0].Offset:][:3*4096]; !bytes.Equal(got, cpu0[:3*4096]) {
		t.Errorf("CPU 0 pages not copied as they are")
	}
	if got := fromFile[res.CPUs[2].Offset:]; !bytes.Equal(got, cpu2) {
		t.Errorf("CPU 2 pages not copied as they are")
	}

	if _, err := WriteFile(dat, s, cpus, Options{}, false); !errors.Is(err, os.ErrExist) {
		t.Errorf("second WriteFile without overwrite: %v, want ErrExist", err)
	}
	if _, err := WriteFile(dat, s, cpus, Options{}, true); err != nil {
		t.Errorf("WriteFile with overwrite: %v", err)
	}
	if left, _ := filepath.Glob(filepath.Join(dir, ".trace.dat.*")); len(left) != 0 {
		t.Errorf("temporary files left: %v", left)
	}
}

func TestWriteRejectsBadInput(t *testing.T) {
	s := fixtureSet(t)
	r := func() CPUData { return CPUData{R: bytes.NewReader(nil)} }
	dup := []CPUData{r(), r()}
	neg := r()
	neg.CPU = -1
	for name, cpus := range map[string][]CPUData{"none": nil, "duplicate": dup, "negative": {neg}, "no source": {{CPU: 0}}} {
		if _, err := Write(&bytes.Buffer{}, s, cpus, Options{}); err == nil {
			t.Errorf("%s: Write accepted %+v", name, cpus)
		}
	}
	bad := fixtureSet(t)
	bad.Formats["sched"]["sched_switch"] = []byte("garbage")
	if _, err := Write(&bytes.Buffer{}, bad, []CPUData{r()}, Options{}); err == nil || !strings.Contains(err.Error(), "sched_switch") {
		t.Errorf("Write with a garbage format: %v", err)
	}
	short := CPUData{R: bytes.NewReader(pages(1, 0, 0)), Size: 2 * 4096}
	if _, err := Write(&bytes.Buffer{}, s, []CPUData{short}, Options{}); err == nil || !strings.Contains(err.Error(), "early") {
		t.Errorf("Write from a reader shorter than its Size: %v", err)
	}
}

func FuzzWriteHeader(f *testing.F) {
	s, err := meta.Load(metaFixture)
	if err != nil {
		f.Fatal(err)
	}
	f.Add(s.HeaderPage, s.Formats["sched"]["sched_switch"], s.Clock, s.Uname, uint16(3), uint8(2))
	f.Fuzz(func(t *testing.T, headerPage, format []byte, clock, uname string, cpus uint16, pagesPerCPU uint8) {
		s := &meta.Set{
			HeaderPage:  headerPage,
			HeaderEvent: []byte("x"),
			Formats:     map[string]map[string][]byte{"sched": {"sched_switch": format}},
			Clock:       clock,
			Uname:       uname,
		}
		l, err := s.Layout()
		if err != nil || s.Validate() != nil {
			return
		}
		sizes := make([]int64, int(cpus)%64+1)
		for i := range sizes {
			sizes[i] = int64(pagesPerCPU%4) * int64(l.PageSize)
		}
		var buf bytes.Buffer
		offsets, err := WriteHeader(&buf, s, sizes, Options{})
		if err != nil {
			t.Fatalf("WriteHeader of a valid set: %v", err)
		}
		d, err := decodeHeader(buf.Bytes())
		if err != nil {
			t.Fatal(err)
		}
		if d.headerBytes != buf.Len() || offsets[0] != int64(buf.Len()) || offsets[0]%int64(l.PageSize) != 0 {
			t.Fatalf("header %d bytes, decoded %d, offsets %v", buf.Len(), d.headerBytes, offsets)
		}
	})
}
