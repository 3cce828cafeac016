// Package collect moves a guest's per-CPU trace streams out of their channel
// FIFOs (DIR/trace-path-cpuN.out) into a capture directory, one file of raw
// ring-buffer pages per CPU (OUT/cpuN.raw).
//
// Each CPU has one goroutine that splices its FIFO into its file, so the
// data never passes through user space and the guest never waits on us more
// than the disk makes it. A FIFO is opened O_RDWR|O_NONBLOCK: the open never
// blocks, and the stream never reaches end of file when libvirt or qemu close
// and reopen their end.
//
// A capture file is a sequence of whole pages. The collector only appends;
// when it stops, a trailing partial page (the stream stopped mid-page, or the
// disk filled up) is cut off and reported.
//
// With Start, collect talks to the guest agent (agent.go): over the control
// protocol when the agent answers the handshake (metadata into OUT/meta,
// settings, live stats, a confirmed stop, OUT/trace.dat at the end), with
// the line protocol's bare orders otherwise (the kernel's C agent; raw
// pages only).
//
// Lifecycle: Run opens every descriptor it uses and closes all of them before
// it returns, whatever happened; the capture files are fsynced first.
//
// Where things are: run.go holds Run and the phases of a capture; stream.go
// the hot path, one CPU's FIFO spliced into its file, drained and cut to
// whole pages; stale.go what an earlier recording left in the FIFOs,
// discarded before a start order; capturedir.go when a capture directory
// may be used or replaced; agent.go the conversation with the guest agent
// (the page layout of the directory it streams, asked for after each
// start); summary.go what the capture holds and lost; this file the
// configuration and the names of a capture's files.
package collect

import (
	"context"
	"io"
	"strconv"
	"time"

	"github.com/vtrace/vtrace/host/orders"
	"github.com/vtrace/vtrace/host/session"
	"github.com/vtrace/vtrace/host/tracedat"
	"github.com/vtrace/vtrace/proto/ringbuf"
	"github.com/vtrace/vtrace/proto/tracefs"
	"github.com/vtrace/vtrace/proto/wire"
)

// Defaults for the zero values of Config.
const (
	DefaultPageSize      = 4096
	DefaultSettle        = 500 * time.Millisecond
	DefaultDrainTimeout  = 10 * time.Second
	DefaultProgressEvery = 500 * time.Millisecond
	DefaultFIFOSize      = 1 << 20
)

// Config says what to collect and how.
type Config struct {
	Dir string // the domain's FIFO directory
	Out string // the capture directory, made if missing
	// PageSize is the guest's ring-buffer page size; when 0, the one of
	// the header_page the agent sent after the start (the directory it
	// streams), else the one of its handshake, else DefaultPageSize.
	PageSize int
	Duration time.Duration // stop after this long (0: only when ctx is done)
	// Start sends the start order once every FIFO is open and emptied of
	// what an earlier recording left there, and the stop order at the end,
	// before draining.
	Start        bool
	OrderTimeout time.Duration // for each order or reply (orders.DefaultTimeout when 0)
	// HandshakeTimeout is how long Start waits for the agent's answer to
	// Hello before it uses the line protocol's bare orders
	// (session.DefaultHandshakeTimeout when 0).
	HandshakeTimeout time.Duration
	// Settings choose what the agent records; they need Start and an
	// agent that speaks the protocol.
	Settings wire.Settings
	// Log, when not nil, gets notices as they happen (the one that says
	// no agent answered the handshake).
	Log io.Writer
	// Force replaces the cpuN.raw files of an earlier capture in Out.
	Force bool
	// Settle is how long the streams must stay quiet after the stop order
	// before the capture ends, so the agent's last partial pages arrive.
	// Used only with Start (DefaultSettle when 0).
	Settle time.Duration
	// DrainTimeout bounds the whole drain at the end (DefaultDrainTimeout when 0).
	DrainTimeout time.Duration
	// FIFOSize is the buffer asked for each FIFO, so that bursts from the
	// guest fit while we write (DefaultFIFOSize when 0; best effort).
	FIFOSize int
	// Progress, when not nil, gets one line of per-CPU bytes and rates,
	// rewritten in place with \r every ProgressEvery, and a last line
	// ending in \n when the capture ends.
	Progress      io.Writer
	ProgressEvery time.Duration
	// TraceDatOptions choose the version and compression of OUT/trace.dat
	// (the zero value: tracedat.DefaultFormat, uncompressed).
	TraceDatOptions tracedat.Options
	// Timeline, when not nil, records the host's own events too and puts
	// both on one timeline (timeline.go).
	Timeline *Timeline
	// Alive, when not nil, is called every second while recording with a
	// context that bounds it (AliveTimeout); an error says the guest went
	// away and why (a libvirt domain no longer running). liveness.go has
	// the checks made without it.
	Alive func(context.Context) error
	// QuietCheck is how long neither a page nor a control frame may come
	// before the agent is asked whether it is still there
	// (DefaultQuietCheck when 0); AliveTimeout bounds its answer, and
	// each call of Alive (DefaultAliveTimeout when 0).
	QuietCheck   time.Duration
	AliveTimeout time.Duration
}

// maxBadShown bounds the corrupt pages a CPU lists; Stats.CorruptPages
// counts them all.
const maxBadShown = 3

// CPU is what was saved for one CPU.
type CPU struct {
	CPU     int
	File    string        // OUT/cpuN.raw
	Bytes   int64         // bytes kept: whole pages only
	Dropped int64         // bytes of a trailing partial page cut off at the end
	Stats   ringbuf.Stats // what the page reader found in File's good pages (CorruptPages counts the others)
	Bad     []ringbuf.BadPage
	ScanErr error // why the page reader stopped early, if it did
	Late    bool  // still streaming when the drain timed out
	// Stale is the bytes discarded from the FIFO before the start order:
	// an earlier recording's.
	Stale int64
	// NotStreamed: the agent did not stream this CPU (it has a FIFO, but
	// the agent named it neither in its handshake nor in its final
	// counters, and nothing came).
	NotStreamed bool
}

// Summary is the outcome of a capture.
type Summary struct {
	Out      string
	PageSize int
	Elapsed  time.Duration
	CPUs     []CPU
	Notes    []string // things that did not stop the capture but matter

	Agent      *wire.HelloReply // the agent that answered the handshake; nil without one
	AgentStats []wire.CPUStats  // each CPU's final counters, from the agent's StopReply
	Meta       string           // OUT/meta, when saved
	TraceDat   string           // OUT/trace.dat, when written
	Timeline   *TimelineSummary // with Config.Timeline and an agent that answered clock probes
	// Gone says when and how the guest went away, when it did before
	// the end of the capture (Run then returns ErrGuestGone).
	Gone *Gone
	// TraceDatBadPages counts the pages OUT/trace.dat holds as empty
	// pages in place of corrupt ones.
	TraceDatBadPages int64
}

func withDefaults(cfg Config) Config {
	if cfg.OrderTimeout <= 0 {
		cfg.OrderTimeout = orders.DefaultTimeout
	}
	if cfg.HandshakeTimeout <= 0 {
		cfg.HandshakeTimeout = session.DefaultHandshakeTimeout
	}
	if cfg.Settle <= 0 {
		cfg.Settle = DefaultSettle
	}
	if cfg.DrainTimeout <= 0 {
		cfg.DrainTimeout = DefaultDrainTimeout
	}
	if cfg.FIFOSize <= 0 {
		cfg.FIFOSize = DefaultFIFOSize
	}
	if cfg.QuietCheck <= 0 {
		cfg.QuietCheck = DefaultQuietCheck
	}
	if cfg.AliveTimeout <= 0 {
		cfg.AliveTimeout = DefaultAliveTimeout
	}
	if cfg.ProgressEvery <= 0 {
		cfg.ProgressEvery = DefaultProgressEvery
	}
	return cfg
}

// MetaDir and TraceDat name what a capture holds besides its raw files.
const (
	MetaDir  = "meta"
	TraceDat = "trace.dat"
)

// FileName is the name of CPU cpu's capture file: cpuN.raw.
func FileName(cpu int) string { return "cpu" + strconv.Itoa(cpu) + ".raw" }

// isFileName reports whether name is FileName(n) for some n, written
// without sign or leading zeros.
func isFileName(name string) bool {
	_, ok := tracefs.CPUFromName(name, "cpu", ".raw")
	return ok
}
