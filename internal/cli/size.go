package cli

import (
	"fmt"
	"math"
	"strconv"
	"strings"

	"github.com/vtrace/vtrace/proto/wire"
)

// The size syntax of every size flag: a number of bytes with an optional K,
// M or G suffix, powers of 1024 as dd and trace-cmd read them ("64K" is
// 65536). Either case; a trailing "B" or "iB" is allowed ("4KiB", "1MB").
const SizeSyntax = "a number of bytes with an optional K, M or G suffix (powers of 1024)"

// ParseSize reads a size in the flags' syntax. Zero is refused: no size
// flag has a use for it, and a zero Size means "not given".
func ParseSize(s string) (uint64, error) {
	t := strings.TrimSpace(s)
	unit := false // "iB" needs a K, M or G before it
	switch u := strings.ToUpper(t); {
	case strings.HasSuffix(u, "IB"):
		t, unit = t[:len(t)-2], true
	case strings.HasSuffix(u, "B"):
		t = t[:len(t)-1]
	}
	mult := uint64(1)
	if n := len(t); n > 0 {
		switch t[n-1] {
		case 'k', 'K':
			mult, t = 1<<10, t[:n-1]
		case 'm', 'M':
			mult, t = 1<<20, t[:n-1]
		case 'g', 'G':
			mult, t = 1<<30, t[:n-1]
		}
	}
	n, err := strconv.ParseUint(t, 10, 64)
	switch {
	case err != nil || unit && mult == 1:
		return 0, fmt.Errorf("parse size %q: want %s", s, SizeSyntax)
	case n == 0:
		return 0, fmt.Errorf("parse size %q: must be positive", s)
	case n > math.MaxUint64/mult:
		return 0, fmt.Errorf("parse size %q: too large", s)
	}
	return n * mult, nil
}

// FormatSize writes n in the flags' syntax, with the largest suffix that
// keeps it exact.
func FormatSize(n uint64) string {
	for _, u := range []struct {
		suffix string
		mult   uint64
	}{{"G", 1 << 30}, {"M", 1 << 20}, {"K", 1 << 10}} {
		if n != 0 && n%u.mult == 0 {
			return strconv.FormatUint(n/u.mult, 10) + u.suffix
		}
	}
	return strconv.FormatUint(n, 10)
}

// Size is a size flag's value in bytes; 0 means not given.
type Size uint64

func (v *Size) Set(s string) error {
	n, err := ParseSize(s)
	if err != nil {
		return err
	}
	*v = Size(n)
	return nil
}

func (v *Size) String() string { return FormatSize(uint64(*v)) }
func (v *Size) Type() string   { return "size" }

// MinPipeSize is the smallest pipe --pipe-size accepts: the size of a new
// pipe on 4 KiB pages (the kernel's PIPE_DEF_BUFFERS, 16 pages).
const MinPipeSize = 64 << 10

// PipeSize checks a requested pipe size in bytes against the kernel's
// limits (max is /proc/sys/fs/pipe-max-size) and rounds it up to whole
// memory pages (F_SETPIPE_SZ rounds further, to a power of two pages).
func PipeSize(n uint64, max, page int) (int, error) {
	if n < MinPipeSize {
		return 0, fmt.Errorf("below the minimum %s", FormatSize(MinPipeSize))
	}
	if p := uint64(page); n <= uint64(max) {
		n = (n + p - 1) / p * p
	}
	if n > uint64(max) {
		return 0, fmt.Errorf("over /proc/sys/fs/pipe-max-size (%s)", FormatSize(uint64(max)))
	}
	return int(n), nil
}

// AgentPipeSize is each CPU's pipe for the agent: n when the user gave it
// (given), checked by PipeSize; else the default n, or, when that is over
// max (/proc/sys/fs/pipe-max-size), the largest size max allows, with a
// note saying so.
func AgentPipeSize(n uint64, given bool, max, page int) (size int, note string, err error) {
	if !given && n > uint64(max) && max >= page {
		size = max / page * page
		return size, fmt.Sprintf("the default pipe size %s is over /proc/sys/fs/pipe-max-size: each CPU's pipe is %s",
			FormatSize(n), FormatSize(uint64(size))), nil
	}
	size, err = PipeSize(n, max, page)
	return size, "", err
}

// BufferKiB turns a ring-buffer size in bytes into the KiB that
// buffer_size_kb and the Start message take, rounded up to a whole KiB: a
// size is never cut below what was asked (the kernel rounds up further, to
// whole sub-buffers).
func BufferKiB(n uint64) uint64 {
	kib := n >> 10
	if n&(1<<10-1) != 0 {
		kib++
	}
	return kib
}

// SubbufSize is a ring-buffer sub-buffer size flag (--subbuf-size), in
// bytes: a power of two from 4K to 1M, the sizes a start order carries
// (the guest kernel may take less); 0 means not given.
type SubbufSize uint64

func (v *SubbufSize) Set(s string) error {
	n, err := ParseSize(s)
	if err != nil {
		return err
	}
	min, max := uint64(wire.MinSubbufKiB)<<10, uint64(wire.MaxSubbufKiB)<<10
	if n < min || n > max || n&(n-1) != 0 {
		return fmt.Errorf("want a power of two from %s to %s (the kernel's sub-buffers are whole pages, up to its own limit)",
			FormatSize(min), FormatSize(max))
	}
	*v = SubbufSize(n)
	return nil
}

func (v *SubbufSize) String() string { return FormatSize(uint64(*v)) }
func (v *SubbufSize) Type() string   { return "size" }

// KiB is the size in KiB, as buffer_subbuf_size_kb and the start order
// take it.
func (v SubbufSize) KiB() uint32 { return uint32(v >> 10) }
