// Package wire is vtrace's framed, versioned control protocol: the frames
// the host and the agent exchange on agent-ctl-path (host to guest on the
// .in FIFO, guest to host on .out), and the messages they carry. It is pure
// Go: it encodes into byte slices and io.Writers and decodes from byte
// slices and io.Readers, and nothing else.
//
// A frame starts with the bytes 0xF6 'V' 'T'. 0xF6 never occurs in UTF-8
// text, so frames and the line protocol's bare "1"/"0" orders can share the
// host-to-guest stream: a Demux splits such a mixed stream into text (for
// proto/control's Parser) and frames, and resynchronises after garbage.
//
// Everything decoded here may come from a hostile peer: every length is
// checked before anything is allocated, counts and strings are capped, and
// names are validated, so that no decoded name can climb out of a directory.
// Errors wrap ErrMalformed, ErrTooLarge, ErrChecksum, ErrVersion or
// ErrUnknownType. docs/protocol.md describes the bytes.
package wire

import (
	"encoding"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"

	"github.com/vtrace/vtrace/proto/tracefs"
)

// Protocol versions this package speaks. A frame's version byte names the
// meaning of its payload; the frame layout itself never changes.
const (
	MinVersion = 1
	Version    = 1
)

// Bounds. Every decoder enforces them; every encoder refuses to exceed them.
const (
	MaxFrame    = 1 << 20            // payload bytes in one frame
	MaxChunk    = MaxFrame - 1024    // MetaChunk data bytes that always fit a frame
	MaxString   = 4096               // any string field
	MaxName     = 255                // one name: event, system, instance, clock
	MaxCPUs     = tracefs.MaxCPU + 1 // CPU entries; CPU numbers are 0 to tracefs.MaxCPU
	MaxEvents   = 65536              // events, and filters, in Settings
	MaxVersions = 64                 // versions in a Hello
	MaxItems    = 64                 // items in a MetaRequest
	MaxErrors   = 256                // errors in a MetaEnd
	MaxMetaItem = 64 << 20           // declared size of one metadata item
	// Sub-buffer sizes a Settings may ask for, in KiB: one 4 KiB page up
	// to the ring buffer's own limit (its write counter's 20 bits:
	// RB_WRITE_MASK + 1 in kernel/trace/ring_buffer.c). The guest kernel
	// may allow less (128 pages of its own).
	MinSubbufKiB = 4
	MaxSubbufKiB = 1024
	MaxLatencyMS = 3_600_000 // Settings.LatencyMS: one hour
)

// Sentinel errors, to be matched with errors.Is.
var (
	ErrMalformed   = errors.New("malformed")
	ErrTooLarge    = errors.New("too large")
	ErrChecksum    = errors.New("checksum mismatch")
	ErrVersion     = errors.New("unsupported protocol version")
	ErrUnknownType = errors.New("unknown message type")
)

// Magic starts every frame.
var Magic = [3]byte{0xF6, 'V', 'T'}

// Frame layout sizes: header, then payload, then the payload's CRC-32C.
const (
	HeaderLen  = 14
	TrailerLen = 4
)

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// Type says what a frame's payload is.
type Type uint8

// Message types. Receivers skip types they do not know.
const (
	TypeHello         Type = 1  // host → guest
	TypeHelloReply    Type = 2  // guest → host
	TypeStart         Type = 3  // host → guest
	TypeStartReply    Type = 4  // guest → host
	TypeStop          Type = 5  // host → guest
	TypeStopReply     Type = 6  // guest → host
	TypeMetaRequest   Type = 7  // host → guest
	TypeMetaChunk     Type = 8  // guest → host
	TypeMetaEnd       Type = 9  // guest → host
	TypeStats         Type = 10 // guest → host
	TypeStatusRequest Type = 11 // host → guest
	TypeStatus        Type = 12 // guest → host
	TypeError         Type = 13 // either way
	TypeClockProbe    Type = 14 // host → guest
	TypeClockReply    Type = 15 // guest → host
)

var typeNames = [...]string{
	TypeHello: "hello", TypeHelloReply: "hello-reply", TypeStart: "start",
	TypeStartReply: "start-reply", TypeStop: "stop", TypeStopReply: "stop-reply",
	TypeMetaRequest: "meta-request", TypeMetaChunk: "meta-chunk", TypeMetaEnd: "meta-end",
	TypeStats: "stats", TypeStatusRequest: "status-request", TypeStatus: "status",
	TypeError: "error", TypeClockProbe: "clock-probe", TypeClockReply: "clock-reply",
}

func (t Type) String() string {
	if int(t) < len(typeNames) && typeNames[t] != "" {
		return typeNames[t]
	}
	return fmt.Sprintf("type-%d", uint8(t))
}

// Message is one of the typed messages of this package (*Hello, *Start...).
type Message interface {
	Type() Type
	encoding.BinaryMarshaler   // payload bytes; validates first
	encoding.BinaryUnmarshaler // from payload bytes; validates after
}

// New returns an empty message of type t, or nil when t is unknown.
func New(t Type) Message {
	switch t {
	case TypeHello:
		return new(Hello)
	case TypeHelloReply:
		return new(HelloReply)
	case TypeStart:
		return new(Start)
	case TypeStartReply:
		return new(StartReply)
	case TypeStop:
		return new(Stop)
	case TypeStopReply:
		return new(StopReply)
	case TypeMetaRequest:
		return new(MetaRequest)
	case TypeMetaChunk:
		return new(MetaChunk)
	case TypeMetaEnd:
		return new(MetaEnd)
	case TypeStats:
		return new(Stats)
	case TypeStatusRequest:
		return new(StatusRequest)
	case TypeStatus:
		return new(Status)
	case TypeError:
		return new(Error)
	case TypeClockProbe:
		return new(ClockProbe)
	case TypeClockReply:
		return new(ClockReply)
	}
	return nil
}

// Frame is one frame as read from a stream. Flags are reserved: senders
// write 0, receivers ignore them.
type Frame struct {
	Version uint8
	Type    Type
	Flags   uint8
	Payload []byte
}

// Append appends the frame's bytes to dst.
func (f *Frame) Append(dst []byte) ([]byte, error) {
	if len(f.Payload) > MaxFrame {
		return dst, fmt.Errorf("encode %v frame: payload of %d bytes: %w", f.Type, len(f.Payload), ErrTooLarge)
	}
	start := len(dst)
	dst = append(dst, Magic[:]...)
	dst = append(dst, f.Version, byte(f.Type), f.Flags)
	dst = binary.LittleEndian.AppendUint32(dst, uint32(len(f.Payload)))
	dst = binary.LittleEndian.AppendUint32(dst, crc32.Checksum(dst[start:start+10], castagnoli))
	dst = append(dst, f.Payload...)
	return binary.LittleEndian.AppendUint32(dst, crc32.Checksum(f.Payload, castagnoli)), nil
}

// AppendMessage appends m as a frame of the current Version to dst.
func AppendMessage(dst []byte, m Message) ([]byte, error) {
	p, err := m.MarshalBinary()
	if err != nil {
		return dst, err
	}
	f := Frame{Version: Version, Type: m.Type(), Payload: p}
	return f.Append(dst)
}

// WriteMessage writes m as one frame in a single Write. Frames of at most
// PIPE_BUF (4096) bytes are atomic on a FIFO shared with other writers.
func WriteMessage(w io.Writer, m Message) error {
	b, err := AppendMessage(nil, m)
	if err != nil {
		return err
	}
	if _, err := w.Write(b); err != nil {
		return fmt.Errorf("write %v frame: %w", m.Type(), err)
	}
	return nil
}

// Decode returns the message a frame carries. A frame of an unknown type
// gives ErrUnknownType, which a receiver skips.
func Decode(f *Frame) (Message, error) {
	if f.Version < MinVersion || f.Version > Version {
		return nil, fmt.Errorf("decode %v frame: version %d, want %d to %d: %w", f.Type, f.Version, MinVersion, Version, ErrVersion)
	}
	m := New(f.Type)
	if m == nil {
		return nil, fmt.Errorf("decode frame: %v: %w", f.Type, ErrUnknownType)
	}
	if err := m.UnmarshalBinary(f.Payload); err != nil {
		return nil, err
	}
	return m, nil
}
