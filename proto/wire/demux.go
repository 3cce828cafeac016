package wire

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"

	"github.com/vtrace/vtrace/proto/control"
)

// Item is one thing a Demux found: text, a frame, or a problem.
type Item struct {
	// Text is raw text bytes: a run of them, which may hold several lines
	// or part of one. A line may come in several pieces across reads;
	// proto/control's Parser takes them as they come. A Frame or an Err
	// ends the text line before it (the bytes of a frame are never part of
	// an order): call the Parser's End there.
	Text []byte
	// Frame is a frame whose checksums matched. Its payload is its own.
	Frame *Frame
	// Err is a frame that could not be read. The Demux has already moved
	// on, dropping bytes up to the next magic or newline, or (a frame cut
	// short by a text order) reading its bytes as text.
	Err error
}

// Demux splits a byte stream into text and frames. The zero value is
// ready. It keeps at most one unfinished frame (HeaderLen+MaxFrame+
// TrailerLen bytes); text is handed on as it arrives, never held.
type Demux struct {
	// TextOrders is for a reader whose peer may also speak the line
	// protocol (the agent reading the host). At the end of each read, an
	// unfinished frame whose bytes end with a whole order line (a newline,
	// "1" or "0", a newline: proto/control.EndsWithOrder) is taken for what
	// it then is, a false start: its first byte is text and the rest is
	// read again, where no frame can run past the read's end. So the order
	// that follows garbage is obeyed at once, whatever the garbage looked
	// like (a stray magic, a header whose length claims more than follows).
	// A real frame is never split by it when it arrives in one read; split
	// across reads, it is lost only if its bytes so far end with such a
	// line, which no field of the host's messages makes (names and filters
	// hold no newline).
	TextOrders bool

	buf      []byte // an unfinished frame, from its magic (or the start of it) on
	skipping bool   // resynchronising: dropping bytes up to a magic or newline
	dropped  uint64

	// A frame whose payload fails its checksum may have swallowed the
	// start of the next frames (a writer that died mid-frame): its bytes
	// are looked at again. Frames found that way are not, so that every
	// byte is looked at no more than twice.
	noRescan bool // the unfinished frame began inside such a second look
}

// Dropped counts the bytes discarded so far while resynchronising.
func (d *Demux) Dropped() uint64 { return d.dropped }

// Feed takes the bytes of one read and returns what they complete.
func (d *Demux) Feed(p []byte) []Item {
	data := p
	if len(d.buf) > 0 {
		d.buf = append(d.buf, p...)
		data = d.buf
	}
	s := scan{d: d, data: data, text: -1, final: d.TextOrders && control.EndsWithOrder(data)}
	if d.noRescan {
		s.second = 1
	}
	pending := s.run()
	s.endText(min(pending, len(data)))
	switch {
	case pending >= len(data):
		d.buf, d.noRescan = d.buf[:0], false
		if cap(d.buf) > 64<<10 {
			d.buf = nil // do not keep a megabyte for the next small frame
		}
	case len(d.buf) > 0: // data is d.buf: the unfinished frame goes to its front
		d.noRescan = pending < s.second
		if pending > 0 {
			d.buf = d.buf[:copy(d.buf, data[pending:])]
		}
	default:
		d.noRescan = pending < s.second
		d.buf = append(d.buf[:0], data[pending:]...)
	}
	return s.items
}

// scan is one pass of Feed over the bytes it has: what an unfinished
// frame held, then the read.
type scan struct {
	d      *Demux
	data   []byte
	final  bool // the bytes end with an order line: a frame that does not end within them is none
	second int  // bytes before this index are looked at a second time (a bad frame's payload)
	text   int  // where the run of text being gathered began; -1: none
	items  []Item
}

// run goes through s.data and returns where an unfinished frame begins
// (len(s.data) when none).
func (s *scan) run() int {
	d, data := s.d, s.data
	for i := 0; i < len(data); {
		if d.skipping {
			j := indexBreak(data[i:])
			if j < 0 {
				d.dropped += uint64(len(data) - i)
				return len(data)
			}
			d.dropped += uint64(j)
			i += j
			if data[i] == '\n' {
				// Text resumes with the newline: it ends the line the bad
				// frame cut, so the next line is one of its own.
				d.skipping = false
				s.text = i
				i++
				continue
			}
		} else if data[i] != Magic[0] {
			if s.text < 0 {
				s.text = i
			}
			j := bytes.IndexByte(data[i:], Magic[0])
			if j < 0 {
				return len(data)
			}
			i += j
		}
		// data[i] is Magic[0]: a frame may begin.
		next, pending := s.frame(i)
		if pending {
			return i
		}
		i = next
	}
	return len(data)
}

// frame looks at the frame that may begin at i. It returns where to go on,
// or pending when the frame is unfinished and may still end in a later
// read.
func (s *scan) frame(i int) (next int, pending bool) {
	d, rest := s.d, s.data[i:]
	n := min(len(rest), len(Magic))
	if !bytes.Equal(rest[:n], Magic[:n]) {
		return s.notFrame(i), false // the next byte is looked at again: it may be a newline or a magic
	}
	if len(rest) < HeaderLen {
		if !s.final {
			return 0, true
		}
		if n == len(Magic) {
			s.emit(i, Item{Err: fmt.Errorf("read frame: %d bytes of its header, then a text order: %w", len(rest), io.ErrUnexpectedEOF)})
		}
		return s.notFrame(i), false
	}
	h := rest[:HeaderLen]
	if crc32.Checksum(h[:10], castagnoli) != binary.LittleEndian.Uint32(h[10:]) {
		// Its first byte is dropped; the rest is looked at again, skipping
		// up to the next magic or newline.
		s.emit(i, Item{Err: fmt.Errorf("read frame header: %w", ErrChecksum)})
		d.dropped++
		d.skipping = true
		return i + 1, false
	}
	typ := Type(h[4])
	length := binary.LittleEndian.Uint32(h[6:])
	if length > MaxFrame {
		// The header is sound, the length is not: skip to a magic or newline.
		s.emit(i, Item{Err: fmt.Errorf("read %v frame: length %d over %d: %w", typ, length, MaxFrame, ErrTooLarge)})
		d.dropped += HeaderLen
		d.skipping = true
		return i + HeaderLen, false
	}
	size := HeaderLen + int(length) + TrailerLen
	if len(rest) < size {
		if !s.final {
			return 0, true
		}
		s.emit(i, Item{Err: fmt.Errorf("read %v frame: %d of its %d bytes, then a text order: %w", typ, len(rest), size, io.ErrUnexpectedEOF)})
		return s.notFrame(i), false
	}
	payload := rest[HeaderLen : size-TrailerLen]
	if crc32.Checksum(payload, castagnoli) == binary.LittleEndian.Uint32(rest[size-TrailerLen:size]) {
		s.emit(i, Item{Frame: &Frame{Version: h[3], Type: typ, Flags: h[5], Payload: bytes.Clone(payload)}})
		d.skipping = false
		return i + size, false
	}
	s.emit(i, Item{Err: fmt.Errorf("read %v frame of %d bytes: payload %w", typ, len(payload), ErrChecksum)})
	d.skipping = true
	if i < s.second { // found in a second look: not looked at a third time
		d.dropped += uint64(size)
		return i + size, false
	}
	d.dropped += HeaderLen
	s.second = i + size
	return i + HeaderLen, false
}

// notFrame takes the byte at i, which began no frame, for text (or drops it
// while skipping) and returns the index after it.
func (s *scan) notFrame(i int) int {
	if s.d.skipping {
		s.d.dropped++
	} else if s.text < 0 {
		s.text = i
	}
	return i + 1
}

// emit adds it, after the text gathered up to i.
func (s *scan) emit(i int, it Item) {
	s.endText(i)
	s.items = append(s.items, it)
}

// endText hands on the run of text gathered up to i.
func (s *scan) endText(i int) {
	if s.text >= 0 && i > s.text {
		s.items = append(s.items, Item{Text: bytes.Clone(s.data[s.text:i])})
	}
	s.text = -1
}

// indexBreak returns the index of the first newline or Magic[0] in p, or -1.
// (bytes.IndexAny would take 0xF6 for any invalid UTF-8.)
func indexBreak(p []byte) int {
	for i, c := range p {
		if c == '\n' || c == Magic[0] {
			return i
		}
	}
	return -1
}

// Flush ends the stream: it returns an error wrapping io.ErrUnexpectedEOF
// when a frame was cut short, and resets the Demux.
func (d *Demux) Flush() error {
	n := len(d.buf)
	*d = Demux{TextOrders: d.TextOrders, dropped: d.dropped}
	if n > 0 {
		return fmt.Errorf("read frame: stream ended %d bytes into it: %w", n, io.ErrUnexpectedEOF)
	}
	return nil
}

// Reader reads Items from an io.Reader through a Demux.
type Reader struct {
	r     io.Reader
	d     Demux
	buf   []byte
	items []Item
	err   error
}

// NewReader returns a Reader on r. Each Read of r is fed whole to the
// Demux, so text keeps the read boundaries proto/control relies on.
func NewReader(r io.Reader) *Reader {
	return &Reader{r: r, buf: make([]byte, 64<<10)}
}

// Next returns the next Item. At the end of r it returns io.EOF (after an
// Item with an error if a frame was cut short), or r's error.
func (r *Reader) Next() (Item, error) {
	for len(r.items) == 0 {
		if r.err != nil {
			return Item{}, r.err
		}
		n, err := r.r.Read(r.buf)
		r.items = r.d.Feed(r.buf[:n])
		if err != nil {
			r.err = err
			if errors.Is(err, io.EOF) {
				if ferr := r.d.Flush(); ferr != nil {
					r.items = append(r.items, Item{Err: ferr})
				}
			}
		}
	}
	it := r.items[0]
	r.items = r.items[1:]
	return it, nil
}

// Dropped counts the bytes discarded while resynchronising.
func (r *Reader) Dropped() uint64 { return r.d.Dropped() }
