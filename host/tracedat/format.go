package tracedat

import (
	"errors"
	"fmt"
	"runtime/debug"
	"strings"
)

// Format is the trace.dat file version written.
type Format int

const (
	// FormatV6 is the flat layout every trace-cmd since 2.x and every
	// KernelShark reads. It has no compression.
	FormatV6 Format = 6
	// FormatV7 is trace-cmd's sectioned layout (its default output since
	// trace-cmd 3.0, read by libtracecmd 1.0 and later, hence by KernelShark
	// 2.1 and later): options first, then one section per kind of metadata
	// and one flyrecord section holding every CPU's pages. Its sections may
	// be compressed.
	FormatV7 Format = 7
)

// DefaultFormat is what Write uses when Options.Format is 0: version 6, the
// one file every reader of trace.dat opens (trace-cmd 2.x and 3.x,
// KernelShark 2.0 built on the library before trace-cmd 3.0, libtracecmd
// built without libzstd). docs/format.md gives the reasoning.
const DefaultFormat = FormatV6

func (f Format) String() string { return fmt.Sprintf("v%d", int(f)) }

// Compression is the algorithm of a version 7 file's compressed sections.
type Compression string

const (
	// CompressNone writes no section compressed (the file's compression
	// header says "none").
	CompressNone Compression = "none"
	// CompressZstd compresses every metadata section (one zstd frame
	// each) and each CPU's pages in chunks of ChunkPages pages (one zstd
	// frame per chunk), the layout trace-cmd 3.x writes and reads.
	CompressZstd Compression = "zstd"
)

// ChunkPages is how many ring-buffer pages one compressed chunk of a CPU's
// data holds (trace-cmd writes 10; its reader decompresses a chunk at a
// time, so a chunk is the unit of random access).
const ChunkPages = 10

// ErrFormat is wrapped by the errors of ParseFormat and of Write for a
// format or compression that is unknown or not allowed together.
var ErrFormat = errors.New("bad trace.dat format")

// ParseFormat reads the --format and --compress words of the command line:
// format is "v6", "v7" (or "6", "7"), or "" for the default; compress is
// "none", "zstd" or "" for none. zstd exists only in version 7: with an
// empty format it selects v7; with "v6" it is an error wrapping ErrFormat.
func ParseFormat(format, compress string) (Format, Compression, error) {
	var c Compression
	switch strings.ToLower(compress) {
	case "", "none":
		c = CompressNone
	case "zstd":
		c = CompressZstd
	default:
		return 0, "", fmt.Errorf("%w: compression %q: want none or zstd", ErrFormat, compress)
	}
	var f Format
	switch strings.TrimPrefix(strings.ToLower(format), "v") {
	case "":
		f = DefaultFormat
		if c != CompressNone {
			f = FormatV7
		}
	case "6":
		f = FormatV6
	case "7":
		f = FormatV7
	default:
		return 0, "", fmt.Errorf("%w: format %q: want v6 or v7", ErrFormat, format)
	}
	if err := check(f, c); err != nil {
		return 0, "", err
	}
	return f, c, nil
}

// check refuses a format and compression that do not go together.
func check(f Format, c Compression) error {
	switch {
	case f != FormatV6 && f != FormatV7:
		return fmt.Errorf("%w: version %d: want 6 or 7", ErrFormat, int(f))
	case c != CompressNone && c != CompressZstd:
		return fmt.Errorf("%w: compression %q: want none or zstd", ErrFormat, string(c))
	case f == FormatV6 && c != CompressNone:
		return fmt.Errorf("%w: trace.dat v6 cannot be compressed: %s needs v7", ErrFormat, c)
	}
	return nil
}

// resolve fills in the defaults of opts and checks them.
func (o Options) resolve() (Format, Compression, error) {
	if err := o.Timeline.check(); err != nil {
		return 0, "", fmt.Errorf("%w: %w", ErrFormat, err)
	}
	f, c := o.Format, o.Compression
	if c == "" {
		c = CompressNone
	}
	if f == 0 {
		f = DefaultFormat
		if c != CompressNone {
			f = FormatV7
		}
	}
	return f, c, check(f, c)
}

// zstdVersion is the compressor's version written after "zstd" in the
// file's compression header, where trace-cmd writes libzstd's version
// string (its readers match the name only).
func zstdVersion() string {
	const mod = "github.com/klauspost/compress"
	if bi, ok := debug.ReadBuildInfo(); ok {
		for _, d := range bi.Deps {
			if d.Path == mod {
				return "klauspost/compress@" + d.Version
			}
		}
	}
	return "klauspost/compress"
}
