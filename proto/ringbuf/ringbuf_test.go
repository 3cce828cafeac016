package ringbuf

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"testing"
)

// builder assembles synthetic pages for the parser's unit tests.
type builder struct {
	l    Layout
	data []byte
}

func (b *builder) hdr(typeLen int, delta uint32) {
	b.data = binary.LittleEndian.AppendUint32(b.data, uint32(typeLen)|delta<<5)
}

func (b *builder) event(delta uint32, payload []byte) {
	if len(payload)%4 != 0 {
		payload = append(payload, make([]byte, 4-len(payload)%4)...)
	}
	if len(payload)/4 <= maxDataType {
		b.hdr(len(payload)/4, delta)
	} else {
		b.hdr(0, delta)
		b.data = binary.LittleEndian.AppendUint32(b.data, uint32(len(payload)+4))
	}
	b.data = append(b.data, payload...)
}

func (b *builder) extend(delta uint64) {
	b.hdr(typeTimeExtend, uint32(delta&(1<<tsShift-1)))
	b.data = binary.LittleEndian.AppendUint32(b.data, uint32(delta>>tsShift))
}

func (b *builder) page(ts uint64, flags uint64) []byte {
	p := make([]byte, b.l.PageSize)
	binary.LittleEndian.PutUint64(p, ts)
	binary.LittleEndian.PutUint64(p[b.l.CommitOffset:], uint64(len(b.data))|flags)
	copy(p[b.l.DataOffset:], b.data)
	return p
}

// missedPage is page flagged for missed events, with their count stored
// after the data.
func (b *builder) missedPage(ts uint64, count uint64) []byte {
	p := b.page(ts, flagMissedEvents|flagMissedStored)
	binary.LittleEndian.PutUint64(p[b.l.DataOffset+len(b.data):], count)
	return p
}

func typed(id uint16, n int) []byte {
	p := make([]byte, n)
	binary.LittleEndian.PutUint16(p, id)
	return p
}

const realHeaderPage = "\tfield: u64 timestamp;\toffset:0;\tsize:8;\tsigned:0;\n" +
	"\tfield: local_t commit;\toffset:8;\tsize:8;\tsigned:1;\n" +
	"\tfield: int overwrite;\toffset:8;\tsize:1;\tsigned:1;\n" +
	"\tfield: char data;\toffset:16;\tsize:4080;\tsigned:0;\n"

func TestParseHeaderPage(t *testing.T) {
	t.Parallel()
	l, err := ParseHeaderPage([]byte(realHeaderPage))
	if err != nil {
		t.Fatal(err)
	}
	if want := DefaultLayout(); l != want {
		t.Fatalf("layout = %+v, want %+v", l, want)
	}
	// A 16 KiB sub-buffer (buffer_subbuf_size_kb=16).
	big := bytes.Replace([]byte(realHeaderPage), []byte("size:4080"), []byte("size:16368"), 1)
	l, err = ParseHeaderPage(big)
	if err != nil || l.PageSize != 16384 {
		t.Fatalf("16K layout = %+v, %v", l, err)
	}
	for name, text := range map[string]string{
		"empty":      "",
		"no commit":  "\tfield: u64 timestamp;\toffset:0;\tsize:8;\tsigned:0;\n\tfield: char data;\toffset:16;\tsize:4080;\tsigned:0;\n",
		"huge page":  bytes.NewBufferString(realHeaderPage).String()[:0] + "\tfield: u64 timestamp;\toffset:0;\tsize:8;\n\tfield: local_t commit;\toffset:8;\tsize:8;\n\tfield: char data;\toffset:16;\tsize:999999999;\n",
		"commit odd": "\tfield: u64 timestamp;\toffset:0;\tsize:8;\n\tfield: local_t commit;\toffset:8;\tsize:3;\n\tfield: char data;\toffset:16;\tsize:4080;\n",
		// A commit offset so large that offset+size wraps negative.
		"commit wraps": "\tfield: u64 timestamp;\toffset:0;\tsize:8;\n\tfield: local_t commit;\toffset:9223372036854775804;\tsize:8;\n\tfield: char data;\toffset:16;\tsize:4080;\n",
		"data at 0":    "\tfield: u64 timestamp;\toffset:0;\tsize:8;\n\tfield: local_t commit;\toffset:8;\tsize:8;\n\tfield: char data;\toffset:-8;\tsize:4104;\n",
	} {
		if _, err := ParseHeaderPage([]byte(text)); !errors.Is(err, ErrCorrupt) {
			t.Errorf("%s: err = %v, want ErrCorrupt", name, err)
		}
	}
}

func TestParsePageSynthetic(t *testing.T) {
	t.Parallel()
	b := &builder{l: DefaultLayout()}
	b.event(10, typed(7, 12))
	b.extend(1 << 30)
	b.event(5, typed(8, 200)) // long: type_len 0
	b.hdr(typePadding, 1)     // a discarded event: 4 + array[0] = 12 bytes
	b.data = binary.LittleEndian.AppendUint32(b.data, 8)
	b.data = append(b.data, make([]byte, 4)...)
	b.event(1, typed(7, 4))
	page := b.page(1000, 0)

	var got []Record
	ps, err := ParsePage(b.l, page, func(r Record) error {
		got = append(got, Record{TS: r.TS, Payload: append([]byte(nil), r.Payload...)})
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if ps.Events != 3 || ps.Padding != 1 || ps.TimeExtends != 1 || ps.Missed {
		t.Fatalf("page stats = %+v, want 3 events, 1 padding, 1 extend, no missed", ps)
	}
	wantTS := []uint64{1010, 1010 + 1<<30 + 5, 1010 + 1<<30 + 6}
	wantType := []uint16{7, 8, 7}
	wantLen := []int{12, 200, 4}
	for i, r := range got {
		if r.TS != wantTS[i] || r.Type() != wantType[i] || len(r.Payload) != wantLen[i] {
			t.Errorf("record %d = ts %d type %d len %d, want ts %d type %d len %d",
				i, r.TS, r.Type(), len(r.Payload), wantTS[i], wantType[i], wantLen[i])
		}
	}
	if ps.LastTS != wantTS[2] {
		t.Errorf("LastTS = %d, want %d", ps.LastTS, wantTS[2])
	}
}

func TestParsePageMissed(t *testing.T) {
	t.Parallel()
	b := &builder{l: DefaultLayout()}
	b.event(1, typed(3, 8))
	page := b.missedPage(5, 42)
	ps, err := ParsePage(b.l, page, nil)
	if err != nil {
		t.Fatal(err)
	}
	if !ps.Missed || ps.MissedCount != 42 || ps.Events != 1 {
		t.Fatalf("stats = %+v, want missed 42 and 1 event", ps)
	}
	ps, err = ParsePage(b.l, b.page(5, flagMissedEvents), nil)
	if err != nil || !ps.Missed || ps.MissedCount != 0 {
		t.Fatalf("missed without count: %+v, %v", ps, err)
	}
}

func TestParsePageCorrupt(t *testing.T) {
	t.Parallel()
	l := DefaultLayout()
	mk := func(data []byte, commit uint64) []byte {
		b := &builder{l: l, data: data}
		p := b.page(1, 0)
		binary.LittleEndian.PutUint64(p[8:], commit)
		return p
	}
	le := binary.LittleEndian
	cases := map[string][]byte{
		"commit beyond page":   mk(nil, 5000),
		"short header":         mk([]byte{1, 0}, 2),
		"event past commit":    mk(le.AppendUint32(nil, 28), 8),
		"long event no length": mk(le.AppendUint32(nil, 0), 4),
		"long event too long":  mk(le.AppendUint32(le.AppendUint32(nil, 0), 4000), 8),
		"long event too short": mk(le.AppendUint32(le.AppendUint32(nil, 0), 2), 8),
		"padding too long":     mk(le.AppendUint32(le.AppendUint32(nil, typePadding|1<<5), 4000), 8),
		"extend cut":           mk(le.AppendUint32(nil, typeTimeExtend), 4),
		"missed count outside": mk(nil, 4080|flagMissedEvents|flagMissedStored),
	}
	for name, page := range cases {
		if _, err := ParsePage(l, page, nil); !errors.Is(err, ErrCorrupt) {
			t.Errorf("%s: err = %v, want ErrCorrupt", name, err)
		}
	}
	if _, err := ParsePage(l, make([]byte, 100), nil); !errors.Is(err, ErrTruncated) {
		t.Errorf("short page: err = %v, want ErrTruncated", err)
	}
}

func TestScanTruncatedAndEmpty(t *testing.T) {
	t.Parallel()
	b := &builder{l: DefaultLayout()}
	b.event(1, typed(9, 8))
	b.event(1, typed(9, 8))
	stream := append(b.page(100, 0), make([]byte, 4096)...) // a page, then zero padding
	s, err := Scan(b.l, bytes.NewReader(stream), nil)
	if err != nil {
		t.Fatal(err)
	}
	if s.Pages != 2 || s.EmptyPages != 1 || s.Events != 2 || s.ByType[9] != 2 || s.FirstTS != 101 || s.LastTS != 102 {
		t.Fatalf("stats = %+v", s)
	}
	s, err = Scan(b.l, bytes.NewReader(append(stream, 1, 2, 3)), nil)
	if !errors.Is(err, ErrTruncated) || s.Events != 2 || s.Bytes != 8195 {
		t.Fatalf("truncated: stats %+v, err %v", s, err)
	}
}

// TestRealPages parses pages the kernel wrote and checks against what the
// kernel says it recorded (see TestIntegrationKernelPages for a live run).
func TestRealPages(t *testing.T) {
	t.Parallel()
	raw, err := os.ReadFile(filepath.Join("testdata", "sched-irq.pages"))
	if err != nil {
		t.Fatal(err)
	}
	hp, err := os.ReadFile(filepath.Join("testdata", "header_page"))
	if err != nil {
		t.Fatal(err)
	}
	l, err := ParseHeaderPage(hp)
	if err != nil {
		t.Fatal(err)
	}
	s, err := Scan(l, bytes.NewReader(raw), nil)
	if err != nil {
		t.Fatal(err)
	}
	if s.Events == 0 || s.Pages != int64(len(raw)/l.PageSize) || s.LastTS < s.FirstTS {
		t.Fatalf("real pages: %+v", s)
	}
	// Cutting the last page anywhere must be reported, never panic.
	for cut := 1; cut < l.PageSize; cut += 509 {
		if _, err := Scan(l, bytes.NewReader(raw[:len(raw)-cut]), nil); !errors.Is(err, ErrTruncated) {
			t.Fatalf("cut %d: err = %v, want ErrTruncated", cut, err)
		}
	}
}

func TestStatsMissedAtLeast(t *testing.T) {
	t.Parallel()
	b := &builder{l: DefaultLayout()}
	b.event(1, typed(3, 8))
	counted := b.missedPage(5, 42)
	uncounted := b.page(6, flagMissedEvents)
	plain := b.page(7, 0)
	var stream []byte
	for _, p := range [][]byte{counted, uncounted, plain, uncounted} {
		stream = append(stream, p...)
	}
	s, err := Scan(b.l, bytes.NewReader(stream), nil)
	if err != nil {
		t.Fatal(err)
	}
	if s.MissedPages != 3 || s.MissedEvents != 42 || s.MissedUncounted != 2 || s.MissedAtLeast() != 44 {
		t.Errorf("missed pages %d, counted %d, uncounted pages %d, at least %d; want 3, 42, 2, 44",
			s.MissedPages, s.MissedEvents, s.MissedUncounted, s.MissedAtLeast())
	}
	ps, _ := ParsePage(b.l, counted, nil)
	if !ps.MissedCounted {
		t.Error("a page with a stored count says MissedCounted false")
	}
}

// TestScanSkipping: corrupt pages at the start, in the middle and at the
// end are counted and reported by index; every good page's events are
// counted, none of a bad page's (even those before the fault).
func TestScanSkipping(t *testing.T) {
	t.Parallel()
	l := DefaultLayout()
	good := &builder{l: l}
	good.event(1, typed(9, 8))
	good.event(1, typed(9, 8))
	// Two good events, then a length that runs past the commit.
	half := &builder{l: l}
	half.event(1, typed(5, 8))
	half.event(1, typed(5, 8))
	half.data = binary.LittleEndian.AppendUint32(half.data, 28)
	garbage := make([]byte, l.PageSize)
	for i := range garbage {
		garbage[i] = byte(i*7 + 3)
	}
	binary.LittleEndian.PutUint64(garbage[8:], 60000)
	pages := [][]byte{garbage, good.page(100, 0), half.page(200, 0), good.page(300, 0), garbage}
	var stream []byte
	for _, p := range pages {
		stream = append(stream, p...)
	}
	var bad []int64
	var types []uint16
	s, err := ScanSkipping(l, bytes.NewReader(stream), func(r Record) error {
		types = append(types, r.Type())
		return nil
	}, func(b BadPage) {
		if !errors.Is(b.Err, ErrCorrupt) {
			t.Errorf("page %d: reason %v, want ErrCorrupt", b.Index, b.Err)
		}
		bad = append(bad, b.Index)
	})
	if err != nil {
		t.Fatal(err)
	}
	if fmt.Sprint(bad) != "[0 2 4]" || s.CorruptPages != 3 || s.Pages != 5 || s.Events != 4 || s.ByType[5] != 0 || len(types) != 4 {
		t.Errorf("bad pages %v, stats %+v, events seen %v; want pages 0 2 4 bad, 4 events of type 9", bad, s, types)
	}
	if s.FirstTS != 101 || s.LastTS != 302 {
		t.Errorf("first %d last %d, want 101 and 302", s.FirstTS, s.LastTS)
	}
	// Scan stops at the first bad page.
	if _, err := Scan(l, bytes.NewReader(stream), nil); !errors.Is(err, ErrCorrupt) {
		t.Errorf("Scan: %v, want ErrCorrupt", err)
	}
	// A trailing partial page is still an error.
	if _, err := ScanSkipping(l, bytes.NewReader(stream[:len(stream)-1]), nil, nil); !errors.Is(err, ErrTruncated) {
		t.Errorf("ScanSkipping of a partial page: %v, want ErrTruncated", err)
	}
}

func TestEmptyPage(t *testing.T) {
	t.Parallel()
	l := DefaultLayout()
	page := make([]byte, l.PageSize)
	for i := range page {
		page[i] = 0xff
	}
	l.EmptyPage(page, 77)
	ps, err := ParsePage(l, page, nil)
	if err != nil || ps.Events != 0 || ps.DataBytes != 0 || ps.Missed || ps.Timestamp != 77 {
		t.Errorf("empty page: %+v, %v", ps, err)
	}
}
