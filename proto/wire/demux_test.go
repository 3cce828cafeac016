package wire

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"strings"
	"testing"
	"testing/iotest"

	"github.com/vtrace/vtrace/proto/control"
)

func frameOf(t testing.TB, m Message) []byte {
	t.Helper()
	b, err := AppendMessage(nil, m)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// rawFrame builds a frame header by hand, with a sound header checksum, for
// lengths Append refuses.
func rawFrame(typ Type, length uint32, payload []byte) []byte {
	h := append(Magic[:], Version, byte(typ), 0)
	h = binary.LittleEndian.AppendUint32(h, length)
	h = binary.LittleEndian.AppendUint32(h, crc32.Checksum(h, castagnoli))
	h = append(h, payload...)
	return binary.LittleEndian.AppendUint32(h, crc32.Checksum(payload, castagnoli))
}

// render feeds chunks to a Demux, passing text through proto/control as the
// agent does, and renders what comes out: "1"/"0" for orders, "?text" for
// garbage lines, the type of each frame, "!" plus the sentinel for errors.
func render(t testing.TB, chunks ...[]byte) string {
	return renderDemux(t, &Demux{}, chunks)
}

// renderDemux is render through d.
func renderDemux(t testing.TB, d *Demux, chunks [][]byte) string {
	var p control.Parser
	var out []string
	for _, c := range chunks {
		out = append(out, renderItems(t, &p, d.Feed(c))...)
	}
	if err := d.Flush(); err != nil {
		out = append(out, "!eof")
	}
	return strings.Join(out, " ")
}

// renderItems renders items as render does, passing text through p and
// ending its line at every frame and error, as the agent does.
func renderItems(t testing.TB, p *control.Parser, items []Item) []string {
	var out []string
	orders := func(its []control.Item) {
		for _, o := range its {
			if o.Garbage != nil {
				out = append(out, "?"+string(o.Garbage))
			} else {
				out = append(out, string(rune(o.Order)))
			}
		}
	}
	for _, it := range items {
		switch {
		case it.Err != nil:
			orders(p.End())
			out = append(out, "!"+sentinel(it.Err))
		case it.Frame != nil:
			orders(p.End())
			m, err := Decode(it.Frame)
			if err != nil {
				out = append(out, "!decode "+it.Frame.Type.String())
				continue
			}
			out = append(out, m.Type().String())
		default:
			orders(p.Feed(it.Text))
		}
	}
	return out
}

// renderOrders is render for the agent's Demux (TextOrders).
func renderOrders(t testing.TB, chunks ...[]byte) string {
	return renderDemux(t, &Demux{TextOrders: true}, chunks)
}

func sentinel(err error) string {
	for _, s := range []error{ErrChecksum, ErrTooLarge, ErrMalformed, io.ErrUnexpectedEOF} {
		if errors.Is(err, s) {
			return s.Error()
		}
	}
	return err.Error()
}

func bs(parts ...any) []byte {
	var b []byte
	for _, p := range parts {
		switch p := p.(type) {
		case string:
			b = append(b, p...)
		case []byte:
			b = append(b, p...)
		default:
			panic(fmt.Sprintf("bs: %T", p))
		}
	}
	return b
}

func TestDemux(t *testing.T) {
	t.Parallel()
	hello := frameOf(t, &Hello{ID: 1, Versions: []uint8{1}, Host: "vtrace"})
	stop := frameOf(t, &Stop{ID: 2})
	big := frameOf(t, &MetaChunk{Kind: MetaKallsyms, Total: MaxChunk, Data: bytes.Repeat([]byte{0xF6, 'V', 'T', '\n'}, MaxChunk/4), Last: true})
	corrupt := bytes.Clone(stop)
	corrupt[HeaderLen+5]++ // in the payload: the header stays sound
	badHeader := bytes.Clone(stop)
	badHeader[4] = byte(TypeHello) // the header checksum no longer matches
	oversized := rawFrame(TypeMetaChunk, MaxFrame+1, nil)[:HeaderLen]
	for _, tc := range []struct {
		name   string
		chunks [][]byte
		want   string
	}{
		{"bare order", [][]byte{bs("1\n")}, "1"},
		{"two orders in one read", [][]byte{bs("1\n0\n")}, "1 0"},
		{"echo -n", [][]byte{bs("1")}, "1"},
		{"frame", [][]byte{hello}, "hello"},
		{"frames back to back", [][]byte{bs(hello, stop, hello)}, "hello stop hello"},
		{"orders around frames", [][]byte{bs("1\n", hello, "0\n", stop, "1\n")}, "1 hello 0 stop 1"},
		{"order then frame without newline", [][]byte{bs("1", hello)}, "1 hello"},
		{"frame between crlf orders", [][]byte{bs("1\r\n", stop, "0\r\n")}, "1 stop 0"},
		{"big frame with magic and newlines inside", [][]byte{bs("0\n", big, "1\n")}, "0 meta-chunk 1"},
		{"garbage line", [][]byte{bs("hello\n", stop)}, "?hello stop"},
		{"invalid utf-8 is text", [][]byte{bs("\x99\xcd\xaf\n1\n")}, "?\x99\u036f 1"},
		{"lone magic byte is text", [][]byte{bs("\xF6x\n1\n")}, "?\xF6x 1"},
		{"magic prefix then frame", [][]byte{bs("\xF6V\n", stop, "1\n")}, "?\xF6V stop 1"},
		{"frame inside a line ends it", [][]byte{bs("\xF6V", stop, "1\n")}, "?\xF6V stop 1"},
		{"corrupt payload skipped to newline", [][]byte{bs(corrupt, "1\n0\n", stop)}, "!checksum mismatch 0 stop"},
		{"corrupt payload skipped to magic", [][]byte{bs(corrupt, stop)}, "!checksum mismatch stop"},
		// The second cut frame swallows the first stop; its bytes are not looked
		// at a third time, and dropping goes on to the next newline.
		{"cut frame twice", [][]byte{bs(hello[:20], hello[:20], stop, "1\n", stop, "0\n1\n", stop)}, "!checksum mismatch !checksum mismatch 1 stop"},
		{"bad header resyncs at newline", [][]byte{bs(badHeader, "0\n1\n")}, "!checksum mismatch 1"},
		{"bad header resyncs at magic", [][]byte{bs(badHeader, hello)}, "!checksum mismatch hello"},
		{"oversized length then order", [][]byte{bs(oversized, "junk junk\n1\n")}, "!too large 1"},
		{"oversized length then frame", [][]byte{bs(oversized, "junk", stop, "0\n")}, "!too large stop 0"},
		{"truncated frame at end", [][]byte{bs("1\n", stop[:9])}, "1 !eof"},
		{"cut frame then new frames", [][]byte{bs(hello[:20], stop, "1\n", stop)}, "!checksum mismatch stop 1 stop"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			if got := render(t, tc.chunks...); got != tc.want {
				t.Errorf("one read each:\n got %q\nwant %q", got, tc.want)
			}
			// The same bytes one at a time give the same result (none of
			// these cases has a "10" line, which proto/control would read
			// as two bare orders when split).
			all := bytes.Join(tc.chunks, nil)
			var single [][]byte
			for i := range all {
				single = append(single, all[i:i+1])
			}
			if got := render(t, single...); got != tc.want {
				t.Errorf("byte by byte:\n got %q\nwant %q", got, tc.want)
			}
			// The agent's Demux reads them the same: no read ends with an
			// order line inside an unfinished frame.
			if got := renderOrders(t, tc.chunks...); got != tc.want {
				t.Errorf("with TextOrders, one read each:\n got %q\nwant %q", got, tc.want)
			}
			if got := renderOrders(t, single...); got != tc.want {
				t.Errorf("with TextOrders, byte by byte:\n got %q\nwant %q", got, tc.want)
			}
		})
	}
}

// TestDemuxTextOrders: an order after bytes that looked like the start of a
// frame is obeyed as soon as its line is whole, whatever those bytes were;
// frames that arrive whole are frames.
func TestDemuxTextOrders(t *testing.T) {
	t.Parallel()
	stop := frameOf(t, &Stop{ID: 2})
	claims := rawFrame(TypeStart, 100, nil)[:HeaderLen] // a sound header; no payload follows
	ordersInside := frameOf(t, &MetaChunk{Kind: MetaUname, Total: 5, Data: []byte("\n1\n0\n"), Last: true})
	for _, tc := range []struct {
		name   string
		chunks [][]byte
		want   string
	}{
		{"false start, then an order in its own read", [][]byte{bs("bin\xF6VT\x01\x02\n"), bs("1\n")},
			"?bin !unexpected EOF ?\xF6VT\x01\x02 1"},
		{"false start and order in one read", [][]byte{bs("bin\xF6VT\x01\x02\n1\n")}, "?bin !unexpected EOF ?\xF6VT\x01\x02 1"},
		{"magic alone, then orders", [][]byte{bs("\xF6VT"), bs("\n1\n0\n")}, "!unexpected EOF ?\xF6VT 1 0"},
		{"header claiming more than follows", [][]byte{claims, bs("\n0\n")}, "!unexpected EOF ?" + string(claims) + " 0"},
		{"header claiming more, then a frame and an order", [][]byte{claims, bs("\n", stop, "\n1\n")},
			"!unexpected EOF ?" + string(claims) + " stop 1"},
		{"half a frame, newline, order", [][]byte{stop[:HeaderLen+2], bs("\n1\n")}, "!unexpected EOF ?" + string(stop[:HeaderLen+2]) + " 1"},
		{"order lines inside a frame read whole", [][]byte{ordersInside}, "meta-chunk"},
		{"bad header, then an order", [][]byte{bs("bin", stop[:5], "\x00\x00\x00\x00\x00\x00\x00\x00\x00\n1\n")}, "?bin !checksum mismatch 1"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			if got := renderOrders(t, tc.chunks...); got != tc.want {
				t.Errorf("one read each:\n got %q\nwant %q", got, tc.want)
			}
		})
	}
}

func TestDemuxDropped(t *testing.T) {
	t.Parallel()
	var d Demux
	d.Feed(bs(rawFrame(TypeStop, MaxFrame+1, nil)[:HeaderLen], "abc\n"))
	if d.Dropped() != HeaderLen+3 { // the newline is text: it ends the line
		t.Errorf("Dropped = %d, want %d", d.Dropped(), HeaderLen+3)
	}
}

func TestDemuxBuffersOneFrame(t *testing.T) {
	t.Parallel()
	big := frameOf(t, &MetaChunk{Kind: MetaKallsyms, Total: MaxChunk, Data: make([]byte, MaxChunk), Last: true})
	var d Demux
	if items := d.Feed(big[:len(big)-1]); len(items) != 0 {
		t.Fatalf("items before the frame ended: %+v", items)
	}
	if len(d.buf) > HeaderLen+MaxFrame+TrailerLen {
		t.Errorf("buffered %d bytes", len(d.buf))
	}
	if items := d.Feed(big[len(big)-1:]); len(items) != 1 || items[0].Frame == nil {
		t.Fatalf("got %+v, want the frame", items)
	}
	if cap(d.buf) > 64<<10 {
		t.Errorf("kept a buffer of %d bytes after the frame", cap(d.buf))
	}
}

func TestReader(t *testing.T) {
	t.Parallel()
	stream := bs("1\n", frameOf(t, &Stats{CPUs: sampleCPUs()}), "0\n", frameOf(t, &Stop{ID: 9})[:10])
	r := NewReader(iotest.OneByteReader(bytes.NewReader(stream)))
	var got []string
	for {
		it, err := r.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		switch {
		case it.Err != nil:
			if !errors.Is(it.Err, io.ErrUnexpectedEOF) {
				t.Errorf("error %v, want io.ErrUnexpectedEOF", it.Err)
			}
			got = append(got, "eof")
		case it.Frame != nil:
			got = append(got, it.Frame.Type.String())
		default:
			got = append(got, fmt.Sprintf("%q", it.Text))
		}
	}
	want := `"1" "\n" stats "0" "\n" eof`
	if s := strings.Join(got, " "); s != want {
		t.Errorf("got  %s\nwant %s", s, want)
	}
}

// TestDemuxByteByByteBigFrame: a frame of MaxFrame bytes fed one byte a
// read costs each read a constant amount of work, not its length so far.
func TestDemuxByteByByteBigFrame(t *testing.T) {
	t.Parallel()
	big := frameOf(t, &MetaChunk{Kind: MetaKallsyms, Total: MaxChunk, Data: bytes.Repeat([]byte("x\n"), MaxChunk/2), Last: true})
	for _, textOrders := range []bool{false, true} {
		d := Demux{TextOrders: textOrders}
		frames := 0
		for i := range big {
			for _, it := range d.Feed(big[i : i+1]) {
				if it.Frame == nil {
					t.Fatalf("TextOrders %v: %+v before the frame", textOrders, it)
				}
				frames++
			}
		}
		if frames != 1 {
			t.Errorf("TextOrders %v: %d frames, want 1", textOrders, frames)
		}
	}
}
