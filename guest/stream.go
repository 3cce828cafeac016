package guest

import (
	"errors"
	"fmt"
	"log/slog"
	"os"
	"runtime"
	"sync"
	"sync/atomic"
	"time"

	"github.com/vtrace/vtrace/internal/sys"
	"github.com/vtrace/vtrace/proto/cpustream"
	"github.com/vtrace/vtrace/proto/ringbuf"
)

// errAborted: the agent gave up a stop (drain timeout, second signal).
var errAborted = errors.New("aborted")

type orderKind int

const (
	orderStart orderKind = iota
	orderStop
	orderQuit // stop, then end the goroutine
)

type order struct {
	kind  orderKind
	done  chan error // buffered; receives the outcome
	trace string     // start: read this trace_pipe_raw; stop: switch to it after the drain ("" keeps the current one)
}

// Backoff bounds for the rare cases where poll(2) says ready but nothing
// can move: with buffer_percent 0, trace_pipe_raw polls readable while only
// a partial page exists, which splice will not take; a virtio port whose
// host end is closed polls as hung up. Waiting then doubles from minBackoff
// up to maxBackoff instead of spinning.
const (
	minBackoff = time.Millisecond
	maxBackoff = 250 * time.Millisecond
)

// worker owns one CPU: its trace_pipe_raw, its pipe, its eventfd and (in
// port mode) its port. Only its own goroutine touches its fds until it has
// exited; then close releases them.
type worker struct {
	cpu       int
	layout    ringbuf.Layout
	page      int    // ring-buffer page (sub-buffer) size
	buf       []byte // one page, for read(2) and copies
	hdr       [cpustream.HeaderSize]byte
	tracePath string
	trace     int
	pipeR     int
	pipeW     int
	pipeCap   int
	inPipe    int // bytes in the pipe
	out       output
	waker     *sys.Waker
	orders    chan order
	exited    chan struct{}
	abort     *atomic.Bool
	log       *slog.Logger
	spin      int // polls in a row that said ready but moved nothing

	sent    atomic.Int64 // bytes sent in this recording; read by the control goroutine
	partial int64        // partial pages sent
}

// output is where a CPU's pages go: its port, or the shared stdout.
type output interface {
	// send moves up to n bytes (whole pages) from w's pipe. It returns
	// sys.EAGAIN when nothing can move now.
	send(w *worker, n int) (int, error)
	// writePage sends one whole page from memory, waiting as needed.
	writePage(w *worker, page []byte) error
	fd() int
	close()
}

func (w *worker) close() {
	sys.Close(w.trace)
	sys.Close(w.pipeR)
	sys.Close(w.pipeW)
	if w.waker != nil {
		w.waker.Close()
	}
	if w.out != nil {
		w.out.close()
	}
}

// failf names the CPU, the operation and the file, and keeps the errno.
func (w *worker) failf(op, path string, err error) error {
	return fmt.Errorf("cpu %d: %s %s: %w", w.cpu, op, path, err)
}

// run is the CPU goroutine: bind to the CPU, then obey orders.
func (w *worker) run() error {
	// Never unlocked: the thread's affinity is changed for good, so the
	// thread ends with the goroutine.
	runtime.LockOSThread()
	if err := sys.SetAffinity(w.cpu); err != nil {
		return fmt.Errorf("cpu %d: bind thread: %w", w.cpu, err)
	}
	running := false
	for {
		select {
		case o := <-w.orders:
			var err error
			switch {
			case o.kind == orderStart && !running:
				if err = w.use(o.trace); err == nil {
					running = true
					w.sent.Store(0)
					w.partial = 0
					w.log.Debug("streaming", "from", w.tracePath)
				}
			case o.kind != orderStart && running:
				running = false
				err = w.drain()
				w.log.Debug("stopped", "bytes", w.sent.Load(), "pages", w.sent.Load()/int64(w.page), "partial", w.partial, "err", err)
				if err == nil && o.kind == orderStop {
					err = w.use(o.trace)
				}
			}
			o.done <- err
			if o.kind == orderQuit || (err != nil && !errors.Is(err, errAborted)) {
				return err
			}
			continue
		default:
		}
		if w.abort.Load() {
			return errAborted
		}
		var err error
		if running {
			err = w.stream()
		} else {
			err = w.idle()
		}
		if err != nil {
			return err
		}
	}
}

// use switches to another trace_pipe_raw (an ftrace instance's, or back
// to the default one), closing the old one so that an instance can be
// removed. "" or the current path keeps the current file.
func (w *worker) use(path string) error {
	if path == "" || path == w.tracePath {
		return nil
	}
	fd, err := sys.Open(path, sys.ORdonly|sys.ONonblock, 0)
	if err != nil {
		return fmt.Errorf("cpu %d: %w", w.cpu, err)
	}
	sys.Close(w.trace)
	w.trace, w.tracePath = fd, path
	return nil
}

// idle waits for the next order; no wake-ups otherwise.
func (w *worker) idle() error {
	ev, _, err := sys.Poll(-1, 0, w.waker, -1)
	if err != nil {
		return fmt.Errorf("cpu %d: %w", w.cpu, err)
	}
	if ev == sys.Woken {
		w.waker.Clear()
	}
	return nil
}

// fill splices as many whole pages as the pipe has room for. It reports
// whether trace_pipe_raw had no full page to give.
func (w *worker) fill() (moved int, dry bool, err error) {
	room := (w.pipeCap - w.inPipe) / w.page * w.page
	if room == 0 {
		return 0, false, nil
	}
	n, err := sys.Splice(w.trace, w.pipeW, room, sys.SpliceMove|sys.SpliceNonblock)
	switch {
	case errors.Is(err, sys.EAGAIN), err == nil && n == 0:
		return 0, true, nil
	case err != nil:
		return 0, false, w.failf("splice", w.tracePath, err)
	}
	w.inPipe += n
	return n, false, nil
}

// stream moves what it can, then waits once for data, room or an order.
func (w *worker) stream() error {
	moved, dry, err := w.fill()
	if err != nil {
		return err
	}
	blocked := false
	if w.inPipe > 0 {
		n, err := w.out.send(w, w.inPipe)
		switch {
		case errors.Is(err, sys.EAGAIN):
			blocked = true
		case err != nil:
			return err
		}
		w.inPipe -= n
		w.sent.Add(int64(n))
		moved += n
	}
	if moved > 0 {
		w.spin = 0
		return nil
	}
	if w.spin > 0 {
		return w.backoff()
	}
	var ev sys.Event
	switch {
	case blocked && !dry:
		ev, _, err = sys.Poll(w.out.fd(), sys.Out, w.waker, -1) // the pipe is full
	case blocked:
		ev, err = sys.PollInOut(w.trace, w.out.fd(), w.waker, -1)
	default:
		ev, _, err = sys.Poll(w.trace, sys.In, w.waker, -1)
	}
	if err != nil {
		return fmt.Errorf("cpu %d: %w", w.cpu, err)
	}
	switch ev {
	case sys.Woken:
		w.waker.Clear()
	case sys.Ready:
		w.spin = 1 // the next round should move something
	}
	return nil
}

// backoff waits after a poll said ready but nothing moved, longer each time.
func (w *worker) backoff() error {
	d := min(minBackoff<<min(w.spin-1, 16), maxBackoff)
	if d == maxBackoff && w.spin < 64 {
		w.log.Debug("ready but nothing moves: waiting", "every", d)
		w.spin = 64
	}
	ev, _, err := sys.Poll(-1, 0, w.waker, d)
	if err != nil {
		return fmt.Errorf("cpu %d: %w", w.cpu, err)
	}
	if ev == sys.Woken {
		w.waker.Clear()
	}
	w.spin++
	return nil
}

// waitOut waits until fd takes data. Orders wait for the stop to end; only
// an abort cuts it short.
func (w *worker) waitOut(fd int, spin *int) error {
	if w.abort.Load() {
		return errAborted
	}
	var ev sys.Event
	var err error
	if *spin > 0 {
		ev, _, err = sys.Poll(-1, 0, w.waker, min(minBackoff<<min(*spin-1, 16), maxBackoff))
	} else {
		ev, _, err = sys.Poll(fd, sys.Out, w.waker, -1)
	}
	if err != nil {
		return fmt.Errorf("cpu %d: %w", w.cpu, err)
	}
	switch ev {
	case sys.Woken:
		w.waker.Clear()
		if w.abort.Load() {
			return errAborted
		}
	case sys.Ready:
		*spin++ // a ready that moves nothing (a hung-up port) backs off
	}
	return nil
}

// drain sends everything recorded so far: the full pages by splice, then
// the page the kernel is writing by read(2), sent whole.
func (w *worker) drain() error {
	for {
		for {
			_, dry, err := w.fill()
			if err != nil {
				return err
			}
			if err := w.flush(); err != nil {
				return err
			}
			if dry {
				break
			}
		}
		n, err := sys.Read(w.trace, w.buf)
		if errors.Is(err, sys.EAGAIN) || (err == nil && n == 0) {
			return nil
		}
		if err != nil {
			return w.failf("read", w.tracePath, err)
		}
		clear(w.buf[n:]) // a short read still goes out as a whole page
		if err := w.out.writePage(w, w.buf); err != nil {
			return err
		}
		w.sent.Add(int64(w.page))
		// The kernel fills a page to within a few bytes before moving to
		// the next one; a page with more room left was the one still
		// being written, so there is nothing more up to now.
		ps, err := ringbuf.ParsePage(w.layout, w.buf, nil)
		if err != nil || ps.DataBytes < w.page-w.layout.DataOffset-8 {
			w.partial++
			return nil
		}
	}
}

// flush sends everything in the pipe, waiting for room.
func (w *worker) flush() error {
	spin := 0
	for w.inPipe > 0 {
		n, err := w.out.send(w, w.inPipe)
		if errors.Is(err, sys.EAGAIN) {
			if err := w.waitOut(w.out.fd(), &spin); err != nil {
				return err
			}
			continue
		}
		if err != nil {
			return err
		}
		spin = 0
		w.inPipe -= n
		w.sent.Add(int64(n))
	}
	return nil
}

// portOut is a CPU's own port (or the host's FIFO in loopback).
type portOut struct {
	fdesc int
	path  string
}

func (p *portOut) fd() int { return p.fdesc }
func (p *portOut) close()  { sys.Close(p.fdesc) }

func (p *portOut) send(w *worker, n int) (int, error) {
	m, err := sys.Splice(w.pipeR, p.fdesc, n, sys.SpliceMove|sys.SpliceNonblock)
	if errors.Is(err, sys.EAGAIN) {
		return 0, sys.EAGAIN
	}
	if err != nil {
		return 0, w.failf("splice", p.path, err)
	}
	return m, nil
}

func (p *portOut) writePage(w *worker, page []byte) error {
	return writeAll(w, p.fdesc, p.path, page)
}

// writeAll writes b to a non-blocking fd, waiting for room.
func writeAll(w *worker, fd int, path string, b []byte) error {
	spin := 0
	for len(b) > 0 {
		n, err := sys.Write(fd, b)
		if errors.Is(err, sys.EAGAIN) {
			if err := w.waitOut(fd, &spin); err != nil {
				return err
			}
			continue
		}
		if err != nil {
			return w.failf("write", path, err)
		}
		spin = 0
		b = b[n:]
	}
	return nil
}

// stdoutOut is the one stream all CPUs share in -o mode: each page goes
// out as a cpustream record, header and page under one lock so records
// never interleave.
type stdoutOut struct {
	mu       sync.Mutex
	fdesc    int
	keep     *os.File // keeps fdesc open
	copyMode bool     // stdout refused splice (a tty, an O_APPEND file)
}

func (s *stdoutOut) fd() int { return s.fdesc }
func (s *stdoutOut) close()  {}

// send writes one record: a header, then one page moved from the pipe.
func (s *stdoutOut) send(w *worker, n int) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	hdr := cpustream.AppendHeader(w.hdr[:0], cpustream.Header{CPU: uint32(w.cpu), Length: uint32(w.page)})
	if err := writeAll(w, s.fdesc, "stdout", hdr); err != nil {
		return 0, err
	}
	spin := 0
	for left := w.page; left > 0; {
		if s.copyMode {
			m, err := sys.Read(w.pipeR, w.buf[:left])
			if err != nil {
				return 0, w.failf("read", "pipe", err)
			}
			if err := writeAll(w, s.fdesc, "stdout", w.buf[:m]); err != nil {
				return 0, err
			}
			left -= m
			continue
		}
		m, err := sys.Splice(w.pipeR, s.fdesc, left, sys.SpliceMove|sys.SpliceNonblock)
		switch {
		case errors.Is(err, sys.EINVAL):
			w.log.Debug("stdout refuses splice: copying")
			s.copyMode = true
		case errors.Is(err, sys.EAGAIN):
			if err := w.waitOut(s.fdesc, &spin); err != nil {
				return 0, err
			}
		case err != nil:
			return 0, w.failf("splice", "stdout", err)
		default:
			spin = 0
			left -= m
		}
	}
	return w.page, nil
}

func (s *stdoutOut) writePage(w *worker, page []byte) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	hdr := cpustream.AppendHeader(w.hdr[:0], cpustream.Header{CPU: uint32(w.cpu), Length: uint32(len(page))})
	if err := writeAll(w, s.fdesc, "stdout", hdr); err != nil {
		return err
	}
	return writeAll(w, s.fdesc, "stdout", page)
}
