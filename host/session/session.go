// Package session is the host's side of vtrace's control protocol
// (proto/wire, docs/protocol.md) on a domain's control channel: frames go
// into DIR/agent-ctl-path.in and come back on DIR/agent-ctl-path.out.
//
// Open says Hello. An agent that answers within the handshake timeout is
// driven with frames (Start with settings, Stop until the last pages are
// pushed, metadata, status, live stats). An agent that does not answer (the
// kernel's C agent, or an old vtrace agent) puts the Session in
// line-protocol mode: Start and Stop then write the line protocol's bare
// "1\n" and "0\n" orders exactly as host/orders does, and nothing else is
// possible.
//
// Everything read from the guest is untrusted: frames are bounded and
// checked by proto/wire, metadata is joined by wire.MetaAssembler and
// checked against host/meta's bounds, and no name from the guest becomes a
// path here.
//
// Only one Session at a time may read a control channel: Open takes an
// exclusive flock(2) on the .out FIFO (among vtrace commands on this host)
// and fails with ErrBusy when another command holds it. A unix-socket
// channel (host/fifo.Sockets) is one connection for both directions, and
// its lock is on the channel directory.
//
// Lifecycle: a Session owns two descriptors until Close. Its methods are
// not safe for concurrent use, except Close.
//
// Where things are: this file opens, handshakes and closes; frames.go
// sends requests and reads replies; recording.go holds Start, Stop, Status
// and Watch; meta.go the metadata transfer; print.go the tables.
package session

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"github.com/vtrace/vtrace/host/fifo"
	"github.com/vtrace/vtrace/host/orders"
	"github.com/vtrace/vtrace/internal/sys"
	"github.com/vtrace/vtrace/proto/channel"
	"github.com/vtrace/vtrace/proto/wire"
)

// Defaults for the zero values of Options.
const (
	DefaultHandshakeTimeout = 2 * time.Second
	DefaultReplyTimeout     = 5 * time.Second
	// DefaultMetaTimeout bounds a whole metadata transfer; MetaIdleTimeout
	// bounds each wait for its next chunk.
	DefaultMetaTimeout = 5 * time.Minute
	// DefaultMetaIdleTimeout bounds each wait for the next metadata chunk.
	// It is longer than a reply's: an agent on a loaded TCG guest reading
	// kallsyms (7 MB on Debian's 6.12) can be silent for seconds and is
	// still sound; only one that stays silent this long is given up on.
	DefaultMetaIdleTimeout = 30 * time.Second
)

// maxFlush bounds the stale bytes discarded before Hello, so that a peer
// that writes without end cannot keep Open busy.
const maxFlush = 64 << 20

// Errors, to be matched with errors.Is.
var (
	// ErrLineProtocol: the operation needs an agent that speaks the
	// control protocol, and none answered the handshake, so the Session
	// has only the line protocol's bare orders.
	ErrLineProtocol = errors.New("no vtrace agent answered")
	// ErrBusy: another vtrace command reads the control channel.
	ErrBusy = errors.New("control channel in use")
	// ErrTimeout: the agent did not answer in time.
	ErrTimeout = errors.New("no reply in time")
	// ErrAgent: the agent answered with an error.
	ErrAgent = errors.New("the agent refused")
	// ErrNoSettings (with ErrLineProtocol): recording settings were given,
	// and an agent that speaks only the line protocol cannot apply them.
	ErrNoSettings = errors.New("an agent that speaks only the line protocol (the kernel's C agent) cannot apply settings")
	// ErrRecording (with ErrAgent): a start found the agent recording
	// already; a stop must come first.
	ErrRecording = errors.New("the agent is already recording")
)

// Options tune a Session.
type Options struct {
	OpenTimeout      time.Duration // for a reader of .in (orders.DefaultTimeout)
	HandshakeTimeout time.Duration // for the HelloReply (DefaultHandshakeTimeout)
	ReplyTimeout     time.Duration // for every later reply (DefaultReplyTimeout)
	MetaTimeout      time.Duration // for a whole metadata transfer (DefaultMetaTimeout)
	MetaIdleTimeout  time.Duration // for each metadata chunk (the larger of DefaultMetaIdleTimeout and ReplyTimeout)
	HostVersion      string        // sent in Hello
}

// Session is one conversation with the guest agent.
type Session struct {
	dir    string
	opts   Options
	in     *os.File // DIR/agent-ctl-path.in, written
	out    *os.File // DIR/agent-ctl-path.out, read; nil in line-protocol mode
	outDir string
	// dirLock holds the flock of the channel directory for a socket
	// channel (shareOut); -1 otherwise.
	dirLock int

	hello *wire.HelloReply // nil in line-protocol mode
	id    uint64

	demux wire.Demux
	items []wire.Item
	buf   []byte

	onStats func([]wire.CPUStats)
	stats   []wire.CPUStats // the last Stats
	skipped int             // frames that could not be read, or not expected
	problem error           // the last of them

	heard atomic.Int64 // unix nanoseconds of the last read that returned bytes

	probeClock *sys.TraceClock // while probing: read as each read returns (clock.go)
	readAt     int64           // its reading at the last read

	mu        sync.Mutex // guards cancelled against the read deadline
	cancelled bool
	closeOnce sync.Once
	closeErr  error
}

// Open opens the control channel of the FIFO directory dir and says Hello.
// Without an answer within opts.HandshakeTimeout the Session is in
// line-protocol mode (LineProtocol reports true) and holds no descriptor. An agent that answers
// with something other than a HelloReply is an error.
func Open(ctx context.Context, dir string, opts Options) (*Session, error) {
	if opts.HandshakeTimeout <= 0 {
		opts.HandshakeTimeout = DefaultHandshakeTimeout
	}
	if opts.ReplyTimeout <= 0 {
		opts.ReplyTimeout = DefaultReplyTimeout
	}
	if opts.MetaIdleTimeout <= 0 {
		opts.MetaIdleTimeout = max(DefaultMetaIdleTimeout, opts.ReplyTimeout)
	}
	if opts.MetaTimeout <= 0 {
		opts.MetaTimeout = DefaultMetaTimeout
	}
	if opts.HostVersion == "" {
		opts.HostVersion = "dev"
	}
	outPath := fifo.ReadPath(dir, channel.Ctl)
	s := &Session{dir: dir, opts: opts, outDir: outPath, buf: make([]byte, 64<<10), dirLock: -1}
	// Ids differ from one session to the next, so that a late reply to an
	// earlier command is never taken for one of ours.
	s.id = uint64(time.Now().UnixNano()) & (1<<40 - 1) << 8
	in, err := orders.OpenIn(ctx, dir, opts.OpenTimeout)
	if err != nil {
		return nil, err // "open DIR/agent-ctl-path.in: ..."
	}
	s.in = in
	open := s.openOut
	if withFD(in, fifo.IsSocketFD) {
		open = s.shareOut
	}
	if err := open(outPath); err != nil {
		s.Close()
		return nil, err
	}
	if err := s.handshake(ctx); err != nil {
		s.Close()
		return nil, err
	}
	return s, nil
}

// openOut opens .out as a reader that is also a writer (the open never
// blocks and reads never see end of file), locks it, and discards what an
// earlier conversation left in it.
func (s *Session) openOut(path string) error {
	fd, err := fifo.Open(path, sys.FIFOReadNonblock)
	if errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("%w: run `vtrace host setup <domain>` first", err)
	}
	if err != nil {
		return err // "open DIR/agent-ctl-path.out: ..."
	}
	ok, err := sys.TryLock(fd)
	if err != nil {
		sys.Close(fd)
		return fmt.Errorf("lock %s: %w", path, err)
	}
	if !ok {
		sys.Close(fd)
		return fmt.Errorf("lock %s: %w: another vtrace command (a collect --start, status, start or stop) is talking to the agent; wait for it or run this there", path, ErrBusy)
	}
	for flushed := 0; flushed < maxFlush; {
		n, err := sys.Read(fd, s.buf)
		if err != nil || n == 0 {
			break // EAGAIN: empty
		}
		flushed += n
	}
	s.out = os.NewFile(uintptr(fd), path) // non-blocking: pollable, deadlines work
	return nil
}

// shareOut reads the replies from the connection s.in writes to, a unix
// socket channel (both directions in one connection), and locks the
// channel directory, as openOut locks the .out FIFO: qemu accepts one
// client at a time, and a second command would wait unanswered.
func (s *Session) shareOut(path string) error {
	dfd, err := sys.Open(s.dir, sys.ORdonly|sys.ODirectory, 0)
	if err != nil {
		return fmt.Errorf("lock %s: %w", s.dir, err)
	}
	ok, err := sys.TryLock(dfd)
	if err != nil || !ok {
		sys.Close(dfd)
		if err != nil {
			return fmt.Errorf("lock %s: %w", s.dir, err)
		}
		return fmt.Errorf("lock %s: %w: another vtrace command (a collect --start, status, start or stop) is talking to the agent; wait for it or run this there", s.dir, ErrBusy)
	}
	fd, err := -1, error(nil)
	withFD(s.in, func(in int) bool { fd, err = sys.Dup(in); return true })
	if err != nil {
		sys.Close(dfd)
		return err
	}
	s.out = os.NewFile(uintptr(fd), path)
	s.dirLock = dfd
	return nil
}

// withFD calls fn with f's descriptor without f.Fd(), which would make it
// blocking (and its deadlines void), and returns what fn returns.
func withFD(f *os.File, fn func(fd int) bool) bool {
	rc, err := f.SyscallConn()
	if err != nil {
		return false
	}
	r := false
	rc.Control(func(fd uintptr) { r = fn(int(fd)) })
	return r
}

// handshake says Hello and waits for the HelloReply.
func (s *Session) handshake(ctx context.Context) error {
	s.demux.Flush() // a fresh stream: nothing cut short swallows the reply
	s.items = nil
	id := s.nextID()
	hello := &wire.Hello{ID: id, Versions: []uint8{wire.Version}, Host: "vtrace", HostVersion: s.opts.HostVersion}
	b, err := wire.AppendMessage(nil, hello)
	if err != nil {
		return fmt.Errorf("say hello: %w", err)
	}
	// The newline ends the frame as one garbage line for an agent that
	// parses lines only (an old vtrace agent), so that its next bare order
	// starts a line of its own. A frame-aware agent reads an empty line.
	b = append(b, '\n')
	if err := s.write(b, "hello"); err != nil {
		return err
	}
	deadline := time.Now().Add(s.opts.HandshakeTimeout)
	var bad error
	for {
		msg, ferr, err := s.recv(ctx, deadline)
		if errors.Is(err, ErrTimeout) {
			if bad != nil {
				return fmt.Errorf("handshake on %s: the agent answered with frames that make no HelloReply: %w", s.outDir, bad)
			}
			return s.useLineProtocol()
		}
		if err != nil {
			return fmt.Errorf("handshake: %w", err)
		}
		if ferr != nil {
			bad = ferr
			continue
		}
		switch m := msg.(type) {
		case *wire.HelloReply:
			if m.ID != id {
				continue
			}
			if m.Version < wire.MinVersion || m.Version > wire.Version {
				return fmt.Errorf("handshake: the agent chose protocol version %d, we speak %d to %d", m.Version, wire.MinVersion, wire.Version)
			}
			s.hello = m
			return nil
		case *wire.Error:
			if m.ID == id || m.ID == 0 {
				return fmt.Errorf("handshake: %w", agentError(m))
			}
		}
	}
}

// useLineProtocol switches to the line protocol's bare orders: the
// descriptors go, and with them the lock, since nothing will be read.
func (s *Session) useLineProtocol() error {
	return s.closeFiles()
}

// LineProtocol reports whether no agent answered the handshake: the
// Session then sends the line protocol's bare orders and nothing else.
func (s *Session) LineProtocol() bool { return s.hello == nil }

// Hello is the agent's HelloReply; nil in line-protocol mode.
func (s *Session) Hello() *wire.HelloReply { return s.hello }

// StartAgentHint says how to start the agent in the guest.
const StartAgentHint = "start the agent in the guest: systemctl start vtrace-agent, /etc/init.d/vtrace-agent start, " +
	"or vtrace-guest agent (docs/service.md)"

// LineProtocolNotice is the one line that says why the Session sends the
// line protocol's bare orders.
func (s *Session) LineProtocolNotice() string {
	return fmt.Sprintf("no vtrace agent answered on %s within %v: using the line protocol's bare orders (if the guest runs no agent at all, %s)",
		s.outDir, s.opts.HandshakeTimeout, StartAgentHint)
}

// LastHeard is when the agent last sent bytes on the control channel
// (a reply, Stats, anything); the zero time before it sent any. Safe for
// concurrent use.
func (s *Session) LastHeard() time.Time {
	if n := s.heard.Load(); n != 0 {
		return time.Unix(0, n)
	}
	return time.Time{}
}

// Stats returns the last Stats the agent sent, or nil.
func (s *Session) Stats() []wire.CPUStats { return s.stats }

// Problems counts the frames skipped because they could not be read or
// were not expected, and returns the last such problem.
func (s *Session) Problems() (int, error) { return s.skipped, s.problem }

// OnStats sets the function called with every Stats the agent sends
// while the Session reads (in Watch, or while it waits for a reply).
func (s *Session) OnStats(fn func([]wire.CPUStats)) { s.onStats = fn }

// Close releases the descriptors and returns the first error closing them
// gave. It may be called from another goroutine to interrupt a wait, and
// more than once: every call returns the same error.
func (s *Session) Close() error {
	s.mu.Lock()
	s.cancelled = true
	if s.out != nil {
		s.out.SetReadDeadline(time.Unix(1, 0))
	}
	s.mu.Unlock()
	s.closeOnce.Do(func() { s.closeErr = s.closeFiles() })
	return s.closeErr
}

// closeFiles closes both FIFOs (or the socket's two descriptors and the
// directory's lock) and returns the first error.
func (s *Session) closeFiles() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	var first error
	if s.in != nil {
		first = s.in.Close()
		s.in = nil
	}
	if s.out != nil {
		if err := s.out.Close(); first == nil {
			first = err
		}
		s.out = nil
	}
	if s.dirLock >= 0 {
		sys.Close(s.dirLock)
		s.dirLock = -1
	}
	return first
}
