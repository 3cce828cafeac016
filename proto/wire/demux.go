package wire

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
)

// Item is one thing a Demux found: text, a frame, or a problem.
type Item struct {
	// Text is raw text bytes, ending with '\n' when they end a line. A
	// line may come in several pieces (across reads, or cut by a frame);
	// proto/control's Parser takes them as they come.
	Text []byte
	// Frame is a frame whose checksums matched. Its payload is its own.
	Frame *Frame
	// Err is a frame that could not be read. The Demux has already moved
	// on, dropping bytes up to the next magic or newline.
	Err error
}

// Demux splits a byte stream into text and frames. The zero value is
// ready. It keeps at most one unfinished frame (HeaderLen+MaxFrame+
// TrailerLen bytes); text is handed on as it arrives, never held.
type Demux struct {
	buf      []byte // an unfinished frame, from its magic on
	skipping bool   // resynchronising: dropping bytes up to a magic or newline
	dropped  uint64

	// A frame whose payload fails its checksum may have swallowed the
	// start of the next frames (a writer that died mid-frame): its bytes
	// are looked at again. Frames found that way are not, so that every
	// byte is looked at no more than twice.
	rescanning bool // inside such a second look
	noRescan   bool // the unfinished frame began in one
}

// Dropped counts the bytes discarded so far while resynchronising.
func (d *Demux) Dropped() uint64 { return d.dropped }

// Feed takes the bytes of one read and returns what they complete.
func (d *Demux) Feed(p []byte) []Item {
	var items []Item
	for len(p) > 0 {
		if len(d.buf) > 0 {
			p = d.fill(p, &items)
			continue
		}
		i := indexBreak(p)
		if d.skipping {
			if i < 0 {
				d.dropped += uint64(len(p))
				break
			}
			d.dropped += uint64(i)
			if p[i] == '\n' {
				d.dropped++
				d.skipping = false
				p = p[i+1:]
				continue
			}
			p = p[i:]
		} else {
			if i < 0 {
				items = append(items, Item{Text: bytes.Clone(p)})
				break
			}
			if p[i] == '\n' {
				items = append(items, Item{Text: bytes.Clone(p[:i+1])})
				p = p[i+1:]
				continue
			}
			if i > 0 {
				items = append(items, Item{Text: bytes.Clone(p[:i])})
			}
			p = p[i:]
		}
		// p starts with Magic[0]: a frame may begin.
		d.buf = append(d.buf[:0], p[0])
		d.noRescan = d.rescanning
		p = p[1:]
	}
	return items
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

// fill moves bytes of p into the unfinished frame and returns the rest of
// p. It adds to items what completing or rejecting the frame yields.
func (d *Demux) fill(p []byte, items *[]Item) []byte {
	// The magic, byte by byte: a mismatch means the bytes were not a frame.
	for len(d.buf) < len(Magic) && len(p) > 0 {
		if p[0] != Magic[len(d.buf)] {
			if !d.skipping {
				*items = append(*items, Item{Text: bytes.Clone(d.buf)})
			} else {
				d.dropped += uint64(len(d.buf))
			}
			d.buf = d.buf[:0]
			return p // p[0] is looked at again: it may be a newline or a magic
		}
		d.buf = append(d.buf, p[0])
		p = p[1:]
	}
	if len(d.buf) < HeaderLen {
		n := min(HeaderLen-len(d.buf), len(p))
		d.buf = append(d.buf, p[:n]...)
		p = p[n:]
		if len(d.buf) < HeaderLen {
			return p
		}
		if err := d.checkHeader(); err != nil {
			*items = append(*items, Item{Err: err})
			return d.resync(p, items)
		}
	}
	size := int(binary.LittleEndian.Uint32(d.buf[6:])) + HeaderLen + TrailerLen
	n := min(size-len(d.buf), len(p))
	d.buf = append(d.buf, p[:n]...)
	p = p[n:]
	if len(d.buf) < size {
		return p
	}
	payload := d.buf[HeaderLen : size-TrailerLen]
	f := &Frame{Version: d.buf[3], Type: Type(d.buf[4]), Flags: d.buf[5]}
	var rest []byte
	d.skipping = crc32.Checksum(payload, castagnoli) != binary.LittleEndian.Uint32(d.buf[size-TrailerLen:])
	switch {
	case !d.skipping:
		f.Payload = bytes.Clone(payload)
		*items = append(*items, Item{Frame: f})
	case d.noRescan:
		*items = append(*items, Item{Err: fmt.Errorf("read %v frame of %d bytes: payload %w", f.Type, len(payload), ErrChecksum)})
		d.dropped += uint64(size)
	default:
		*items = append(*items, Item{Err: fmt.Errorf("read %v frame of %d bytes: payload %w", f.Type, len(payload), ErrChecksum)})
		d.dropped += HeaderLen
		rest = bytes.Clone(d.buf[HeaderLen:])
	}
	d.buf = d.buf[:0]
	if cap(d.buf) > 64<<10 {
		d.buf = nil // do not keep a megabyte for the next small frame
	}
	if rest != nil {
		d.rescanning = true
		*items = append(*items, d.Feed(rest)...)
		d.rescanning = false
	}
	return p
}

// checkHeader checks a complete header in d.buf.
func (d *Demux) checkHeader() error {
	h := d.buf[:HeaderLen]
	if crc32.Checksum(h[:10], castagnoli) != binary.LittleEndian.Uint32(h[10:]) {
		return fmt.Errorf("read frame header: %w", ErrChecksum)
	}
	if n := binary.LittleEndian.Uint32(h[6:]); n > MaxFrame {
		// The header is sound, the length is not: skip to a magic or newline.
		d.dropped += HeaderLen
		d.buf = d.buf[:0]
		d.skipping = true
		return fmt.Errorf("read %v frame: length %d over %d: %w", Type(h[4]), n, MaxFrame, ErrTooLarge)
	}
	return nil
}

// resync drops the first byte of a bad header and looks again at the rest,
// skipping up to the next magic or newline.
func (d *Demux) resync(p []byte, items *[]Item) []byte {
	if len(d.buf) == 0 { // checkHeader already dropped the header
		return p
	}
	rest := bytes.Clone(d.buf[1:])
	d.dropped++
	d.buf = d.buf[:0]
	d.skipping = true
	// rest is shorter than a header, so this cannot come back here.
	*items = append(*items, d.Feed(rest)...)
	return p
}

// Flush ends the stream: it returns an error wrapping io.ErrUnexpectedEOF
// when a frame was cut short, and resets the Demux.
func (d *Demux) Flush() error {
	n := len(d.buf)
	*d = Demux{dropped: d.dropped}
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
