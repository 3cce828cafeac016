package guest

import (
	"errors"
	"fmt"
	"os"
	"sync"

	"github.com/vtrace/vtrace/internal/sys"
	"github.com/vtrace/vtrace/internal/textlog"
	"github.com/vtrace/vtrace/proto/cpustream"
)

// A sink takes one CPU's pages: the CPU's own port, or its share of
// standard output (-o). Every call moves whole pages. A sink is used by its
// CPU's goroutine only, and waits (when it must) with that goroutine's
// waiter, so that an abort reaches it.
type sink interface {
	// send moves up to n bytes, whole pages, from the pipe src. When the
	// sink takes nothing now it returns sys.EAGAIN: wait for room on fd.
	send(src, n int, wt *waiter) (int, error)
	// write sends page, whole, waiting for room.
	write(page []byte, wt *waiter) error
	// fd is the file to poll for room.
	fd() int
	// close releases what the sink owns.
	close() error
}

// portSink is a CPU's own port (in loopback, the host's FIFO). It owns the
// port's fd.
type portSink struct {
	cpu  int
	port int
	path string
}

// openPort opens the port at path for cpu's pages.
func openPort(cpu int, path string) (*portSink, error) {
	fd, err := sys.Open(path, sys.ORdwr|sys.ONonblock, 0)
	if err != nil {
		return nil, opError(cpu, "open data port", path, err)
	}
	return &portSink{cpu: cpu, port: fd, path: path}, nil
}

func (p *portSink) fd() int { return p.port }

func (p *portSink) close() error {
	return opError(p.cpu, "close", p.path, sys.Close(p.port))
}

func (p *portSink) send(src, n int, _ *waiter) (int, error) {
	m, err := sys.SpliceRaw(src, p.port, n, sys.SpliceNonblock) // never blocks: see waiter.waitFor
	switch {
	case errors.Is(err, sys.EAGAIN):
		return 0, sys.EAGAIN
	case err != nil:
		return 0, opError(p.cpu, "splice", p.path, err)
	}
	return m, nil
}

func (p *portSink) write(page []byte, wt *waiter) error {
	return writeAll(wt, p.port, p.path, page)
}

// writeAll writes b to the non-blocking fd, waiting for room.
func writeAll(wt *waiter, fd int, path string, b []byte) error {
	var bo backoff
	for len(b) > 0 {
		n, err := sys.Write(fd, b)
		switch {
		case errors.Is(err, sys.EAGAIN):
			err = wt.waitRoom(fd, &bo)
		case err != nil:
			return opError(wt.cpu, "write", path, err)
		default:
			bo = backoff{}
			b = b[n:]
		}
		if err != nil {
			return err
		}
	}
	return nil
}

// stdoutStream is the one stream all CPUs share with -o: each page goes out
// as a cpustream record, header and page under one lock, so records never
// interleave.
//
// No write to it ever blocks: a pipe, FIFO or terminal is opened again
// through /proc/self/fd as a non-blocking file description of the
// stream's own (stdout's own description, shared with the shell, is left
// blocking); a socket is switched to O_NONBLOCK and switched back at the
// end; a regular file never blocks. A stalled reader therefore parks no
// CPU goroutine in write(2): they wait for room in poll(2), where orders
// and an abort reach them, and never while holding the lock except in the
// middle of a record, which an abort cuts short. On a pipe a record starts
// only when the pipe has room for all of it (see fits), so that what a
// stalled reader finds, even after an abort, is whole records.
type stdoutStream struct {
	mu      sync.Mutex
	out     int      // the fd written
	own     bool     // out is the stream's own (reopened): close it at the end
	restore bool     // out is stdout's, switched to O_NONBLOCK: switch it back
	keep    *os.File // keeps stdout open
	users   int      // sinks open
	page    int      // ring-buffer page size
	slots   int      // a pipe's slots (F_GETPIPE_SZ / page size); 0: not a pipe
	buf     []byte   // one page, when copying
	hdr     [cpustream.HeaderSize]byte
	copying bool // stdout refused splice (a tty, an O_APPEND file)
	log     *textlog.Logger
}

func newStdoutStream(f *os.File, page int, log *textlog.Logger) *stdoutStream {
	return &stdoutStream{out: -1, keep: f, page: page, buf: make([]byte, page), log: log}
}

// forCPU is cpu's sink on the stream. The first one opens it.
func (s *stdoutStream) forCPU(cpu int) (sink, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.users == 0 {
		if err := s.open(); err != nil {
			return nil, err
		}
	}
	s.users++
	return &stdoutSink{cpu: cpu, s: s}, nil
}

// open prepares standard output for writes that never block.
func (s *stdoutStream) open() error {
	rc, err := s.keep.SyscallConn() // not Fd(), which makes the file blocking
	if err != nil {
		return fmt.Errorf("use standard output: %w", err)
	}
	var fd int
	rc.Control(func(u uintptr) { fd = int(u) })
	st, err := sys.FstatFd(fd)
	if err != nil {
		return fmt.Errorf("use standard output: %w", err)
	}
	s.own, s.restore, s.slots = false, false, 0
	if st.Mode.IsRegular() {
		s.out = fd
		return nil
	}
	s.out, err = sys.ReopenWriteNonblock(fd)
	if errors.Is(err, sys.ErrNotReopenable) {
		s.out, s.restore = fd, true
		err = sys.SetNonblock(fd, true)
	}
	if err != nil {
		return fmt.Errorf("use standard output without blocking: %w", err)
	}
	s.own = !s.restore
	if st.Mode&os.ModeNamedPipe != 0 {
		if n, err := sys.PipeSize(s.out); err == nil && n/sys.PageSize() >= 2 {
			s.slots = n / sys.PageSize()
		}
	}
	return nil
}

// release ends one sink's share; the last one lets go of what the stream
// opened.
func (s *stdoutStream) release() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.users--; s.users > 0 {
		return nil
	}
	var err error
	switch {
	case s.own:
		err = sys.Close(s.out)
	case s.restore:
		err = sys.SetNonblock(s.out, false)
	}
	s.out = -1
	if err != nil {
		return fmt.Errorf("release standard output: %w", err)
	}
	return nil
}

// stdoutSink is one CPU's share of the stdout stream.
type stdoutSink struct {
	cpu    int
	s      *stdoutStream
	closed bool
}

func (o *stdoutSink) fd() int { return o.s.out }

func (o *stdoutSink) close() error {
	if o.closed {
		return nil
	}
	o.closed = true
	return o.s.release()
}

// send writes records, one page each moved from the pipe src, while
// standard output takes whole records: sys.EAGAIN when it takes none now.
func (o *stdoutSink) send(src, n int, wt *waiter) (int, error) {
	sent := 0
	for ; n-sent >= o.s.page; sent += o.s.page {
		ok, err := o.s.record(o.cpu, src, nil, wt)
		if err != nil {
			return sent, err
		}
		if !ok {
			break
		}
	}
	if sent == 0 {
		return 0, sys.EAGAIN
	}
	return sent, nil
}

// write sends one record, a header and page, waiting for room.
func (o *stdoutSink) write(page []byte, wt *waiter) error {
	var bo backoff
	for {
		ok, err := o.s.record(o.cpu, -1, page, wt)
		if ok || err != nil {
			return err
		}
		if err := wt.waitRoom(o.s.out, &bo); err != nil {
			return err
		}
	}
}

// record writes one record of cpu's: a header, then page, or one page from
// the pipe src when page is nil (spliced, or copied when standard output
// refuses splice). It reports false, having written nothing, when the
// output has no room for the whole record now (see fits). Once the header
// is out it waits for room to finish; only an abort cuts that short.
func (s *stdoutStream) record(cpu, src int, page []byte, wt *waiter) (bool, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if wt.abort.Load() {
		return false, errAborted
	}
	if ok, err := s.fits(cpu); !ok || err != nil {
		return false, err
	}
	n := s.page
	if page != nil {
		n = len(page)
	}
	hdr := cpustream.AppendHeader(s.hdr[:0], cpustream.Header{CPU: uint32(cpu), Length: uint32(n)})
	if err := writeAll(wt, s.out, "standard output", hdr); err != nil {
		return false, err
	}
	if page != nil {
		return true, writeAll(wt, s.out, "standard output", page)
	}
	var bo backoff
	for left := n; left > 0; {
		if s.copying {
			m, err := sys.Read(src, s.buf[:left])
			if err != nil {
				return false, opError(cpu, "read", "pipe", err)
			}
			if err := writeAll(wt, s.out, "standard output", s.buf[:m]); err != nil {
				return false, err
			}
			left -= m
			continue
		}
		m, err := sys.Splice(src, s.out, left, sys.SpliceNonblock)
		switch {
		case errors.Is(err, sys.EINVAL):
			s.log.Debug("standard output refuses splice: copying")
			s.copying = true
		case errors.Is(err, sys.EAGAIN):
			if err := wt.waitRoom(s.out, &bo); err != nil {
				return false, err
			}
		case err != nil:
			return false, opError(cpu, "splice", "standard output", err)
		default:
			bo = backoff{}
			left -= m
		}
	}
	return true, nil
}

// fits reports whether a pipe has room for a whole record now; any other
// output is simply written. The kernel counts a pipe's room in slots
// (pipe_full), each one buffer: a record takes one for its header and, for
// its page, one when spliced or a slot per memory page when copied (a
// header never merges into a page's buffer, which is full, nor into an
// empty pipe). What is left in the pipe (FIONREAD) is the tail of the
// records written, so the slots in use follow from its length.
func (s *stdoutStream) fits(cpu int) (bool, error) {
	if s.slots == 0 {
		return true, nil
	}
	left, err := sys.PipeBuffered(s.out)
	if err != nil {
		return false, opError(cpu, "measure", "standard output", err)
	}
	mem := sys.PageSize()
	pageSlots := func(n int) int { // slots holding the last n bytes of a page
		if !s.copying {
			return 1
		}
		return (n + mem - 1) / mem
	}
	rec := cpustream.HeaderSize + s.page
	used := left / rec * (1 + pageSlots(s.page))
	switch r := left % rec; {
	case r > s.page: // part of a header, and its page
		used += 1 + pageSlots(s.page)
	case r > 0: // part of a page
		used += pageSlots(r)
	}
	return s.slots-used >= 1+pageSlots(s.page), nil
}

// setPage makes the records that follow carry pages of page bytes (a new
// recording's sub-buffer size); no CPU streams meanwhile.
func (s *stdoutStream) setPage(page int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.page = page
	if cap(s.buf) < page {
		s.buf = make([]byte, page)
	}
	s.buf = s.buf[:page]
}
