package wire

import (
	"bytes"
	"fmt"
	"math"
)

// The codec: each message and record lists its fields once (messages.go),
// as a tag and a value that knows where it lives in the struct, how it is
// written and how it is read. Encoding walks the list in order; decoding
// looks each field read up by its tag, so the two directions cannot
// disagree about a tag.

// field binds a tag to one field of a message or record.
type field struct {
	tag   byte
	value value
}

// value is one field's place in a struct and its encoding.
type value interface {
	encode(e *encoder, tag byte) // one field, one per element of a list, or none for a value left out
	decode(v []byte) error       // one occurrence: sets, or appends for a list
}

// fieldSet is a message or a record: a struct that lists its fields.
type fieldSet interface{ fields() []field }

// message is what every Message of this package is underneath.
type message interface {
	Message
	fieldSet
	check() error // the rules of the whole message, after decoding and before encoding
}

func encodeFields(e *encoder, fs []field) {
	for _, f := range fs {
		f.value.encode(e, f.tag)
	}
}

// decodeFields reads p into fs; tags fs does not list are skipped.
func decodeFields(p []byte, fs []field) error {
	return eachField(p, func(tag byte, v []byte) error {
		for _, f := range fs {
			if f.tag == tag {
				return f.value.decode(v)
			}
		}
		return nil
	})
}

// idTag is the tag of the id a message carries where it has one
// (docs/protocol.md).
const idTag = 1

// ID returns the id m carries: the host's choice in a request, the
// request's it answers in a reply or an Error. It is 0 for none (Stats,
// an Error that answers no request, a message of another package).
func ID(m Message) uint64 {
	if fs, ok := m.(fieldSet); ok {
		for _, f := range fs.fields() {
			if n, ok := f.value.(numberValue[uint64]); ok && f.tag == idTag {
				return *n.p
			}
		}
	}
	return 0
}

// marshal validates m, then encodes it.
func marshal(m message) ([]byte, error) {
	if err := m.check(); err != nil {
		return nil, fmt.Errorf("marshal %v: %w", m.Type(), err)
	}
	var e encoder
	encodeFields(&e, m.fields())
	return e.done(m.Type())
}

// unmarshal resets *m, decodes p into it, then validates it.
func unmarshal[T any, PT interface {
	*T
	message
}](m PT, p []byte) error {
	*m = *new(T)
	if len(p) > MaxFrame {
		return fmt.Errorf("unmarshal %v: payload of %d bytes: %w", m.Type(), len(p), ErrTooLarge)
	}
	if err := decodeFields(p, m.fields()); err != nil {
		return fmt.Errorf("unmarshal %v: %w", m.Type(), err)
	}
	if err := m.check(); err != nil {
		return fmt.Errorf("unmarshal %v: %w", m.Type(), err)
	}
	return nil
}

func (m *Hello) MarshalBinary() ([]byte, error)         { return marshal(m) }
func (m *HelloReply) MarshalBinary() ([]byte, error)    { return marshal(m) }
func (m *Start) MarshalBinary() ([]byte, error)         { return marshal(m) }
func (m *StartReply) MarshalBinary() ([]byte, error)    { return marshal(m) }
func (m *Stop) MarshalBinary() ([]byte, error)          { return marshal(m) }
func (m *StopReply) MarshalBinary() ([]byte, error)     { return marshal(m) }
func (m *MetaRequest) MarshalBinary() ([]byte, error)   { return marshal(m) }
func (m *MetaChunk) MarshalBinary() ([]byte, error)     { return marshal(m) }
func (m *MetaEnd) MarshalBinary() ([]byte, error)       { return marshal(m) }
func (m *Stats) MarshalBinary() ([]byte, error)         { return marshal(m) }
func (m *StatusRequest) MarshalBinary() ([]byte, error) { return marshal(m) }
func (m *Status) MarshalBinary() ([]byte, error)        { return marshal(m) }
func (m *Error) MarshalBinary() ([]byte, error)         { return marshal(m) }
func (m *ClockProbe) MarshalBinary() ([]byte, error)    { return marshal(m) }
func (m *ClockReply) MarshalBinary() ([]byte, error)    { return marshal(m) }

func (m *Hello) UnmarshalBinary(p []byte) error         { return unmarshal(m, p) }
func (m *HelloReply) UnmarshalBinary(p []byte) error    { return unmarshal(m, p) }
func (m *Start) UnmarshalBinary(p []byte) error         { return unmarshal(m, p) }
func (m *StartReply) UnmarshalBinary(p []byte) error    { return unmarshal(m, p) }
func (m *Stop) UnmarshalBinary(p []byte) error          { return unmarshal(m, p) }
func (m *StopReply) UnmarshalBinary(p []byte) error     { return unmarshal(m, p) }
func (m *MetaRequest) UnmarshalBinary(p []byte) error   { return unmarshal(m, p) }
func (m *MetaChunk) UnmarshalBinary(p []byte) error     { return unmarshal(m, p) }
func (m *MetaEnd) UnmarshalBinary(p []byte) error       { return unmarshal(m, p) }
func (m *Stats) UnmarshalBinary(p []byte) error         { return unmarshal(m, p) }
func (m *StatusRequest) UnmarshalBinary(p []byte) error { return unmarshal(m, p) }
func (m *Status) UnmarshalBinary(p []byte) error        { return unmarshal(m, p) }
func (m *Error) UnmarshalBinary(p []byte) error         { return unmarshal(m, p) }
func (m *ClockProbe) UnmarshalBinary(p []byte) error    { return unmarshal(m, p) }
func (m *ClockReply) UnmarshalBinary(p []byte) error    { return unmarshal(m, p) }

// The kinds of value.

type unsigned interface{ ~uint8 | ~uint32 | ~uint64 }

// number is a u64, left out when 0.
func number(p *uint64) value { return numberValue[uint64]{p, math.MaxUint64} }

// numberUpTo is an integer read as a u64 that must not exceed max, left out
// when 0.
func numberUpTo[T unsigned](p *T, max uint64) value { return numberValue[T]{p, max} }

type numberValue[T unsigned] struct {
	p   *T
	max uint64
}

func (n numberValue[T]) encode(e *encoder, tag byte) { e.opt(tag, uint64(*n.p)) }

func (n numberValue[T]) decode(v []byte) error {
	x, err := getSmall(v, n.max)
	if err == nil {
		*n.p = T(x)
	}
	return err
}

// numbers is a repeated integer, each at most max, at most count of them;
// every element is written, 0 included.
func numbers[T unsigned](p *[]T, max uint64, count int) value { return numbersValue[T]{p, max, count} }

type numbersValue[T unsigned] struct {
	p     *[]T
	max   uint64
	count int
}

func (n numbersValue[T]) encode(e *encoder, tag byte) {
	for _, x := range *n.p {
		e.uint(tag, uint64(x))
	}
}

func (n numbersValue[T]) decode(v []byte) error {
	x, err := getSmall(v, n.max)
	if err == nil {
		*n.p, err = add(*n.p, T(x), n.count)
	}
	return err
}

// boolean is a bool written as the integer 1, left out when false.
func boolean(p *bool) value { return booleanValue{p} }

type booleanValue struct{ p *bool }

func (f booleanValue) encode(e *encoder, tag byte) { e.flag(tag, *f.p) }

func (f booleanValue) decode(v []byte) (err error) {
	*f.p, err = getBool(v)
	return err
}

// str is a string of at most MaxString bytes, left out when empty.
func str(p *string) value { return strValue{p} }

type strValue struct{ p *string }

func (s strValue) encode(e *encoder, tag byte) { e.str(tag, *s.p) }

func (s strValue) decode(v []byte) (err error) {
	*s.p, err = getString(v)
	return err
}

// strs is a repeated string, each of at most MaxString bytes, at most
// count of them; every element is written, "" included.
func strs(p *[]string, count int) value { return strsValue{p, count} }

type strsValue struct {
	p     *[]string
	count int
}

func (s strsValue) encode(e *encoder, tag byte) { e.strs(tag, *s.p) }

func (s strsValue) decode(v []byte) error {
	x, err := getString(v)
	if err == nil {
		*s.p, err = add(*s.p, x, s.count)
	}
	return err
}

// data is raw bytes, bounded by the frame only, left out when empty.
func data(p *[]byte) value { return dataValue{p} }

type dataValue struct{ p *[]byte }

func (d dataValue) encode(e *encoder, tag byte) {
	if len(*d.p) > 0 {
		e.field(tag, *d.p)
	}
}

func (d dataValue) decode(v []byte) error {
	*d.p = bytes.Clone(v)
	return nil
}

type recordPtr[T any] interface {
	*T
	fieldSet
}

// record is one nested record, always written (empty when zero); a record
// read again replaces the one before.
func record[T any, PT recordPtr[T]](p *T) value { return recordValue[T, PT]{p} }

type recordValue[T any, PT recordPtr[T]] struct{ p *T }

func (r recordValue[T, PT]) encode(e *encoder, tag byte) {
	e.nested(tag, func(e *encoder) { encodeFields(e, PT(r.p).fields()) })
}

func (r recordValue[T, PT]) decode(v []byte) error {
	*r.p = *new(T)
	return decodeFields(v, PT(r.p).fields())
}

// records is a repeated nested record, at most count of them. Each record
// is encoded from, and decoded into, one scratch record, so that a list
// builds the record's field table once.
func records[T any, PT recordPtr[T]](p *[]T, count int) value {
	return &recordsValue[T, PT]{p: p, count: count}
}

type recordsValue[T any, PT recordPtr[T]] struct {
	p       *[]T
	count   int
	scratch T
	table   []field // of scratch
}

func (r *recordsValue[T, PT]) fields() []field {
	if r.table == nil {
		r.table = PT(&r.scratch).fields()
	}
	return r.table
}

func (r *recordsValue[T, PT]) encode(e *encoder, tag byte) {
	for _, x := range *r.p {
		r.scratch = x
		e.nested(tag, func(e *encoder) { encodeFields(e, r.fields()) })
	}
}

func (r *recordsValue[T, PT]) decode(v []byte) error {
	r.scratch = *new(T)
	if err := decodeFields(v, r.fields()); err != nil {
		return err
	}
	var err error
	*r.p, err = add(*r.p, r.scratch, r.count)
	return err
}
