package wire

import (
	"encoding/binary"
	"fmt"
)

// A payload is a sequence of fields: tag (u8), length (u32 LE), value.
// Integers are 8-byte little-endian values; strings and bytes are raw;
// a nested record is itself a sequence of fields. Zero integers and empty
// strings are left out; repeated fields repeat their tag. Decoders ignore
// tags they do not know, which is how newer peers add fields.

const fieldHeader = 5

type encoder struct {
	b      []byte
	tooBig bool
}

func (e *encoder) field(tag byte, v []byte) {
	if e.tooBig || len(e.b)+fieldHeader+len(v) > MaxFrame {
		e.tooBig = true
		return
	}
	e.b = append(e.b, tag)
	e.b = binary.LittleEndian.AppendUint32(e.b, uint32(len(v)))
	e.b = append(e.b, v...)
}

// uint encodes v as a field, always: for repeated integers, where 0 counts.
func (e *encoder) uint(tag byte, v uint64) {
	e.field(tag, binary.LittleEndian.AppendUint64(make([]byte, 0, 8), v))
}

// opt encodes v unless it is 0.
func (e *encoder) opt(tag byte, v uint64) {
	if v != 0 {
		e.uint(tag, v)
	}
}

func (e *encoder) flag(tag byte, v bool) {
	if v {
		e.uint(tag, 1)
	}
}

func (e *encoder) str(tag byte, s string) {
	if s != "" {
		e.field(tag, []byte(s))
	}
}

func (e *encoder) strs(tag byte, ss []string) {
	for _, s := range ss {
		e.field(tag, []byte(s))
	}
}

// nested encodes what fn encodes as the value of one field.
func (e *encoder) nested(tag byte, fn func(*encoder)) {
	start := len(e.b)
	e.field(tag, nil)
	if e.tooBig {
		return
	}
	fn(e)
	if !e.tooBig {
		binary.LittleEndian.PutUint32(e.b[start+1:], uint32(len(e.b)-start-fieldHeader))
	}
}

// done returns the payload, or ErrTooLarge when it outgrew a frame.
func (e *encoder) done(t Type) ([]byte, error) {
	if e.tooBig {
		return nil, fmt.Errorf("encode %v: payload over %d bytes: %w", t, MaxFrame, ErrTooLarge)
	}
	if e.b == nil {
		return []byte{}, nil
	}
	return e.b, nil
}

// eachField calls fn for every field of p, checking each length against
// what is left.
func eachField(p []byte, fn func(tag byte, v []byte) error) error {
	for len(p) > 0 {
		if len(p) < fieldHeader {
			return fmt.Errorf("read field: %d trailing bytes: %w", len(p), ErrMalformed)
		}
		tag, n := p[0], binary.LittleEndian.Uint32(p[1:])
		p = p[fieldHeader:]
		if uint64(n) > uint64(len(p)) {
			return fmt.Errorf("read field %d: length %d with %d bytes left: %w", tag, n, len(p), ErrMalformed)
		}
		if err := fn(tag, p[:n]); err != nil {
			return fmt.Errorf("read field %d: %w", tag, err)
		}
		p = p[n:]
	}
	return nil
}

func getUint(v []byte) (uint64, error) {
	if len(v) != 8 {
		return 0, fmt.Errorf("integer of %d bytes: %w", len(v), ErrMalformed)
	}
	return binary.LittleEndian.Uint64(v), nil
}

// getSmall reads an integer that must not exceed max.
func getSmall(v []byte, max uint64) (uint64, error) {
	x, err := getUint(v)
	if err == nil && x > max {
		err = fmt.Errorf("value %d over %d: %w", x, max, ErrMalformed)
	}
	return x, err
}

func getBool(v []byte) (bool, error) {
	x, err := getSmall(v, 1)
	return x == 1, err
}

func getString(v []byte) (string, error) {
	if len(v) > MaxString {
		return "", fmt.Errorf("string of %d bytes: %w", len(v), ErrTooLarge)
	}
	return string(v), nil
}

// add appends v to s unless s already holds max elements.
func add[T any](s []T, v T, max int) ([]T, error) {
	if len(s) >= max {
		return s, fmt.Errorf("more than %d entries: %w", max, ErrTooLarge)
	}
	return append(s, v), nil
}
