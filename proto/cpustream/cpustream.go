// Package cpustream is the record format of `vtrace guest agent -o`: all
// CPUs' ring-buffer pages on one stream (standard output), every page whole
// and tagged with the CPU it came from.
//
// A record is a 16-byte header, all fields little-endian:
//
//	offset 0  magic  "VTRC"
//	offset 4  u32    cpu
//	offset 8  u32    length of the page that follows, in bytes
//	offset 12 u32    flags, zero for now (a reader rejects unknown flags)
//
// followed by length bytes: one whole ring-buffer page exactly as
// trace_pipe_raw gave it. Records follow each other with no padding. The
// package is pure Go: an encoder of headers and a decoder of streams.
package cpustream

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
)

// HeaderSize is the size of a record header.
const HeaderSize = 16

// MaxLength bounds a page (the kernel's largest sub-buffer is far smaller),
// so a corrupt header cannot make a reader allocate without limit.
const MaxLength = 16 << 20

// Magic starts every record.
const Magic = "VTRC"

var (
	// ErrCorrupt: a header is not a record header.
	ErrCorrupt = errors.New("corrupt cpustream record")
	// ErrTruncated: the stream ended inside a record.
	ErrTruncated = errors.New("truncated cpustream record")
)

// Header describes the page that follows it.
type Header struct {
	CPU    uint32
	Length uint32
	Flags  uint32
}

// AppendHeader appends the 16 header bytes to dst.
func AppendHeader(dst []byte, h Header) []byte {
	dst = append(dst, Magic...)
	dst = binary.LittleEndian.AppendUint32(dst, h.CPU)
	dst = binary.LittleEndian.AppendUint32(dst, h.Length)
	return binary.LittleEndian.AppendUint32(dst, h.Flags)
}

// ParseHeader decodes and checks a 16-byte header.
func ParseHeader(b []byte) (Header, error) {
	if len(b) < HeaderSize {
		return Header{}, fmt.Errorf("parse header of %d bytes: %w", len(b), ErrTruncated)
	}
	if string(b[:4]) != Magic {
		return Header{}, fmt.Errorf("parse header: magic %q: %w", b[:4], ErrCorrupt)
	}
	h := Header{
		CPU:    binary.LittleEndian.Uint32(b[4:]),
		Length: binary.LittleEndian.Uint32(b[8:]),
		Flags:  binary.LittleEndian.Uint32(b[12:]),
	}
	if h.Length > MaxLength {
		return Header{}, fmt.Errorf("parse header: length %d over %d: %w", h.Length, MaxLength, ErrCorrupt)
	}
	if h.Flags != 0 {
		return Header{}, fmt.Errorf("parse header: unknown flags %#x: %w", h.Flags, ErrCorrupt)
	}
	return h, nil
}

// Reader decodes records from a stream.
type Reader struct {
	r    io.Reader
	hdr  [HeaderSize]byte
	page []byte
}

// NewReader reads records from r.
func NewReader(r io.Reader) *Reader { return &Reader{r: r} }

// Next returns the next record. The page is valid until the following call.
// At a clean end of stream it returns io.EOF; a stream that ends inside a
// record gives an error wrapping ErrTruncated.
func (r *Reader) Next() (Header, []byte, error) {
	if _, err := io.ReadFull(r.r, r.hdr[:]); err != nil {
		if err == io.ErrUnexpectedEOF {
			err = ErrTruncated
		}
		if err == io.EOF {
			return Header{}, nil, io.EOF
		}
		return Header{}, nil, fmt.Errorf("read record header: %w", err)
	}
	h, err := ParseHeader(r.hdr[:])
	if err != nil {
		return Header{}, nil, err
	}
	if cap(r.page) < int(h.Length) {
		r.page = make([]byte, h.Length)
	}
	r.page = r.page[:h.Length]
	if _, err := io.ReadFull(r.r, r.page); err != nil {
		if err == io.EOF || err == io.ErrUnexpectedEOF {
			err = ErrTruncated
		}
		return Header{}, nil, fmt.Errorf("read page of cpu %d: %w", h.CPU, err)
	}
	return h, r.page, nil
}
