package wire

import (
	"bytes"
	"slices"
	"sort"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/vtrace/vtrace/proto/control"
)

// mixedStream is a host-to-guest stream as the agent may read it: orders
// from echo, frames, and a frame cut short.
func mixedStream(t testing.TB) []byte {
	var b []byte
	b = append(b, "1\n"...)
	for _, name := range sortedSamples() {
		b = append(b, frameOf(t, samples()[name])...)
	}
	b = append(b, "0\r\n"...)
	stop := frameOf(t, &Stop{ID: 1})
	return append(b, stop[:20]...)
}

func sortedSamples() []string {
	var names []string
	for n := range samples() {
		names = append(names, n)
	}
	sort.Strings(names)
	return names
}

type demuxed struct {
	text    []byte
	frames  [][]byte // whole frames, re-encoded
	errs    int
	dropped uint64
	pending int
}

func demuxAll(t *testing.T, in []byte, chunk int, textOrders bool) demuxed {
	d := Demux{TextOrders: textOrders}
	var out demuxed
	for len(in) > 0 {
		n := min(chunk, len(in))
		for _, it := range d.Feed(in[:n]) {
			switch {
			case it.Err != nil:
				out.errs++
			case it.Frame != nil:
				b, err := it.Frame.Append(nil)
				if err != nil {
					t.Fatalf("re-encode a frame read: %v", err)
				}
				out.frames = append(out.frames, b)
			default:
				if len(it.Text) == 0 {
					t.Fatal("empty text item")
				}
				out.text = append(out.text, it.Text...)
			}
		}
		in = in[n:]
	}
	out.dropped, out.pending = d.Dropped(), len(d.buf)
	if out.pending > HeaderLen+MaxFrame+TrailerLen {
		t.Fatalf("buffered %d bytes", out.pending)
	}
	return out
}

func FuzzDemux(f *testing.F) {
	f.Add(mixedStream(f), uint16(0))
	f.Add(mixedStream(f), uint16(1))
	f.Add(mixedStream(f), uint16(7))
	f.Add([]byte("1\n0\n1"), uint16(1))
	f.Add(append(rawFrame(TypeStop, MaxFrame+1, nil)[:HeaderLen], "x\n1\n"...), uint16(3))
	f.Add(bs("bin\xF6VT\x01\x02\n"), uint16(4))
	f.Add(rawFrame(TypeStart, 100, nil)[:HeaderLen], uint16(5))
	f.Add(bs(rawFrame(TypeStart, 100, nil)[:HeaderLen], frameOf(f, &Stop{ID: 1}), "\n1\n"), uint16(0))
	f.Fuzz(func(t *testing.T, in []byte, chunk uint16) {
		whole := demuxAll(t, in, len(in), false)
		orders := demuxAll(t, in, len(in), true)
		for _, got := range []demuxed{whole, orders} {
			// Every byte is text, part of a frame, dropped, or waiting.
			n := len(got.text) + int(got.dropped) + got.pending
			for _, fr := range got.frames {
				n += len(fr)
			}
			if n != len(in) {
				t.Fatalf("accounted for %d bytes of %d: %+v", n, len(in), got)
			}
			// Frames are found where they were written.
			for _, fr := range got.frames {
				if !bytes.Contains(in, fr) {
					t.Fatalf("frame % x not in the input", fr)
				}
			}
		}
		// Read boundaries change nothing but how text is cut.
		if chunk > 0 {
			split := demuxAll(t, in, int(chunk), false)
			if diff := cmp.Diff(whole, split, cmp.AllowUnexported(demuxed{})); diff != "" {
				t.Fatalf("in reads of %d, not as in one read (-one +split):\n%s", chunk, diff)
			}
		}
		// Read whole, the agent's Demux finds every frame the plain one
		// finds (and, past a false start, maybe more).
		if len(orders.frames) < len(whole.frames) || !slices.EqualFunc(whole.frames, orders.frames[:len(whole.frames)], bytes.Equal) {
			t.Fatalf("with TextOrders, frames %x; without, %x", orders.frames, whole.frames)
		}
		// Whatever came before, in reads of any size, an order line that
		// follows is obeyed once its newline has arrived (in one read or
		// in pieces), unless its bytes ended a frame.
		tails := [][]string{{"\n1\n"}, {"\n", "1\n"}, {"\n1", "\n"}, {"\n", "1", "\n"}}
		tail := tails[int(chunk)%len(tails)]
		d := Demux{TextOrders: true}
		var p control.Parser
		step := int(chunk)
		if step == 0 {
			step = len(in)
		}
		for rest := in; len(rest) > 0; {
			n := min(step, len(rest))
			renderItems(t, &p, d.Feed(rest[:n]))
			rest = rest[n:]
		}
		var got []string
		frame := false
		for _, piece := range tail {
			items := d.Feed([]byte(piece))
			for _, it := range items {
				frame = frame || it.Frame != nil
			}
			got = append(got, renderItems(t, &p, items)...)
		}
		if !frame && !slices.Contains(got, "1") {
			t.Fatalf("after % x in reads of %d, %q gave %q: the order was not seen", in, step, tail, got)
		}
	})
}

// FuzzUnmarshal feeds every message type's decoder; the first byte picks the
// type. What decodes must encode again, to the same message.
func FuzzUnmarshal(f *testing.F) {
	for _, name := range sortedSamples() {
		m := samples()[name]
		f.Add(append([]byte{byte(m.Type())}, must(m.MarshalBinary())...))
	}
	f.Fuzz(func(t *testing.T, in []byte) {
		if len(in) == 0 {
			return
		}
		m := New(Type(in[0]))
		if m == nil {
			return
		}
		if err := m.UnmarshalBinary(in[1:]); err != nil {
			return
		}
		b, err := m.MarshalBinary()
		if err != nil {
			t.Fatalf("decoded %+v but cannot encode it: %v", m, err)
		}
		again := New(m.Type())
		if err := again.UnmarshalBinary(b); err != nil {
			t.Fatalf("cannot decode own encoding of %+v: %v", m, err)
		}
		if diff := cmp.Diff(m, again); diff != "" {
			t.Fatalf("re-encoding changed the message (-decoded +re-decoded):\n%s", diff)
		}
	})
}

// FuzzMetaAssembler runs a guest's stream of frames through the host's
// path: Demux, Decode, MetaAssembler.
func FuzzMetaAssembler(f *testing.F) {
	var stream []byte
	for _, c := range append(chunks(MetaFormat, "sched/sched_switch", []byte("name: sched_switch\nID: 316\n"), 8),
		chunks(MetaUname, "", []byte("Linux guest 6.1.0 x86_64"), 100)...) {
		stream = append(stream, frameOf(f, c)...)
	}
	f.Add(stream)
	f.Fuzz(func(t *testing.T, in []byte) {
		var d Demux
		a := MetaAssembler{MaxTotal: 1 << 20}
		var total int
		for _, it := range d.Feed(in) {
			if it.Frame == nil {
				continue
			}
			m, err := Decode(it.Frame)
			c, ok := m.(*MetaChunk)
			if err != nil || !ok {
				continue
			}
			item, err := a.Add(c)
			if err != nil {
				return
			}
			if item != nil {
				total += len(item.Data)
				if max, _ := maxItemSize(item.Kind); uint64(len(item.Data)) > max {
					t.Fatalf("item %v of %d bytes", item.Kind, len(item.Data))
				}
				if item.Kind == MetaFormat && checkFormatName(item.Name) != nil {
					t.Fatalf("item named %q", item.Name)
				}
			}
		}
		if total > 1<<20 {
			t.Fatalf("assembled %d bytes over the cap", total)
		}
		_ = a.End()
	})
}
