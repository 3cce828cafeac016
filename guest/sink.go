package guest

import (
	"errors"
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
	m, err := sys.Splice(src, p.port, n, sys.SpliceNonblock)
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
// interleave. It does not own stdout.
type stdoutStream struct {
	mu      sync.Mutex
	out     int      // stdout's fd
	keep    *os.File // keeps out open
	page    int      // ring-buffer page size
	buf     []byte   // one page, when copying
	hdr     [cpustream.HeaderSize]byte
	copying bool // stdout refused splice (a tty, an O_APPEND file)
	log     *textlog.Logger
}

func newStdoutStream(f *os.File, page int, log *textlog.Logger) *stdoutStream {
	return &stdoutStream{out: int(f.Fd()), keep: f, page: page, buf: make([]byte, page), log: log}
}

// forCPU is cpu's sink on the stream.
func (s *stdoutStream) forCPU(cpu int) sink { return &stdoutSink{cpu: cpu, s: s} }

// stdoutSink is one CPU's share of the stdout stream.
type stdoutSink struct {
	cpu int
	s   *stdoutStream
}

func (o *stdoutSink) fd() int      { return o.s.out }
func (o *stdoutSink) close() error { return nil }

// send writes one record: a header, then one page moved from the pipe src,
// spliced, or copied when stdout refuses splice.
func (o *stdoutSink) send(src, _ int, wt *waiter) (int, error) {
	s := o.s
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.header(wt, o.cpu, s.page); err != nil {
		return 0, err
	}
	var bo backoff
	for left := s.page; left > 0; {
		if s.copying {
			m, err := sys.Read(src, s.buf[:left])
			if err != nil {
				return 0, opError(o.cpu, "read", "pipe", err)
			}
			if err := writeAll(wt, s.out, "stdout", s.buf[:m]); err != nil {
				return 0, err
			}
			left -= m
			continue
		}
		m, err := sys.Splice(src, s.out, left, sys.SpliceNonblock)
		switch {
		case errors.Is(err, sys.EINVAL):
			s.log.Debug("stdout refuses splice: copying")
			s.copying = true
		case errors.Is(err, sys.EAGAIN):
			if err := wt.waitRoom(s.out, &bo); err != nil {
				return 0, err
			}
		case err != nil:
			return 0, opError(o.cpu, "splice", "stdout", err)
		default:
			bo = backoff{}
			left -= m
		}
	}
	return s.page, nil
}

// write sends one record: a header, then page.
func (o *stdoutSink) write(page []byte, wt *waiter) error {
	s := o.s
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.header(wt, o.cpu, len(page)); err != nil {
		return err
	}
	return writeAll(wt, s.out, "stdout", page)
}

// header writes the record header for n bytes of cpu's; s.mu is held.
func (s *stdoutStream) header(wt *waiter, cpu, n int) error {
	hdr := cpustream.AppendHeader(s.hdr[:0], cpustream.Header{CPU: uint32(cpu), Length: uint32(n)})
	return writeAll(wt, s.out, "stdout", hdr)
}
