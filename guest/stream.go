package guest

// The hot path: a CPU's pages from per_cpu/cpuN/trace_pipe_raw through a
// private pipe to its sink (sink.go), each step's wait and the lossless
// stop. How it waits is in wait.go; the latency bound's catch-up and the
// buffer_percent pacer are in pace.go.

import (
	"errors"
	"fmt"
	"sync/atomic"
	"time"

	"github.com/vtrace/vtrace/internal/sys"
	"github.com/vtrace/vtrace/internal/textlog"
	"github.com/vtrace/vtrace/proto/ringbuf"
)

// worker owns one CPU's stream: its trace_pipe_raw, its pipe, its waker and
// its sink. Only its goroutine (run) touches them until it has ended; then
// close releases them.
type worker struct {
	waiter
	layout    ringbuf.Layout
	page      int    // ring-buffer page (sub-buffer) size, bytes
	buf       []byte // one page, for read(2) of the page being written
	tracePath string
	trace     int
	pipeR     int // the private pipe's ends
	pipeW     int
	pipeCap   int // bytes the pipe holds
	inPipe    int // bytes in the pipe now
	out       sink
	orders    chan order
	exited    chan struct{}
	pace      *pacer

	// While streaming (see stream): every event not yet sent was recorded
	// at or after ref; clean says the ring buffer held nothing unsent at
	// ref; dryAt is when the last fill found no full page left (zero: the
	// last fill did not get that far).
	latency time.Duration // 0: no bound
	ref     time.Time
	clean   bool
	dryAt   time.Time
	blocked bool    // the sink took less than the pipe held: wait for room
	stuck   bool    // the last ready moved nothing
	stall   backoff // paces retries while stuck
	holding bool    // counted by pace as holding unsent events

	sent    atomic.Int64 // bytes sent in this recording; read by the control goroutine
	partial int64        // partial pages sent in this recording
}

// newWorker opens the CPU's trace file (tracePath), a pipe of pipeSize
// bytes, a waker and, last, its sink (openSink). The worker owns them all.
func newWorker(cpu int, tracePath string, l ringbuf.Layout, pipeSize int, openSink func(cpu int) (sink, error),
	pace *pacer, abort *atomic.Bool, log *textlog.Logger) (_ *worker, err error) {
	w := &worker{
		waiter: waiter{cpu: cpu, abort: abort, log: log.With("cpu", cpu)},
		layout: l, page: l.PageSize, buf: make([]byte, l.PageSize),
		tracePath: tracePath, trace: -1, pipeR: -1, pipeW: -1,
		orders: make(chan order, 1), exited: make(chan struct{}), pace: pace,
	}
	defer func() {
		if err != nil {
			w.close()
		}
	}()
	if w.trace, err = sys.Open(tracePath, sys.ORdonly|sys.ONonblock, 0); err != nil {
		return nil, opError(cpu, "open", tracePath, err)
	}
	if w.pipeR, w.pipeW, w.pipeCap, err = sys.Pipe(pipeSize); err != nil {
		return nil, opError(cpu, fmt.Sprintf("make a %d-byte pipe", pipeSize), "", err)
	}
	if w.waker, err = sys.NewWaker(); err != nil {
		return nil, opError(cpu, "make a waker", "", err)
	}
	if w.out, err = openSink(cpu); err != nil {
		return nil, err
	}
	return w, nil
}

// close releases the worker's files and sink once its goroutine has ended.
func (w *worker) close() error {
	var err error
	if w.out != nil {
		err = w.out.close()
	}
	return errors.Join(err,
		opError(w.cpu, "close", w.tracePath, sys.Close(w.trace)),
		opError(w.cpu, "close", "pipe", sys.Close(w.pipeR)),
		opError(w.cpu, "close", "pipe", sys.Close(w.pipeW)),
		opError(w.cpu, "close", "waker", w.waker.Close()))
}

// run is the CPU goroutine: on a thread bound to the CPU (see wait.go:
// it binds whichever thread it resumes on), it obeys orders until a quit,
// a failure or an abort.
func (w *worker) run() error {
	defer w.unbind()
	running := false
	for {
		select {
		case o := <-w.orders:
			var err error
			running, err = w.obey(o, running)
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
			_, err = w.wait(-1, -1, nil) // idle: no wake-ups but orders
		}
		if err != nil {
			return err
		}
	}
}

// stream takes one step: when the latency is due it sends everything
// recorded so far (catchUp); otherwise it waits once and then moves what
// became ready (pump).
//
// The wait is for the trace file, which polls readable at the
// buffer_percent watermark (the pacer's), for room in the sink when it is
// full, for an order, and for the latency: ref+latency, less a tenth for
// the wake-up and the sending. A CPU whose buffer is empty while
// buffer_percent is 0 waits for its first event alone: no wake-ups at all
// while idle. After that event its latency counts from the wake-up.
//
// The latency moves on without partial pages while pages fill: once a
// fill finds no full page left (dryAt), the page then being written holds
// the oldest unsent events; when a later fill takes a page, that page has
// gone, so whatever is unsent was recorded after dryAt.
func (w *worker) stream() error {
	now := time.Now()
	if w.latency > 0 && !w.blocked && !now.Before(w.due()) {
		return w.catchUp()
	}
	in, out, timeout := w.trace, -1, time.Duration(-1)
	if w.blocked {
		out = w.out.fd()
		if w.room() == 0 {
			in = -1 // the pipe is full: room only
		}
	}
	switch {
	case w.stuck: // ready, but nothing moved: retry after a pause
		in, out, timeout = -1, -1, w.stall.next()
		if w.latency > 0 && !w.blocked {
			timeout = min(timeout, w.due().Sub(now))
		}
	case w.latency > 0 && !w.blocked && !(w.clean && w.pace.zero.Load()):
		timeout = w.due().Sub(now)
	}
	zero := w.pace.zero.Load() // as the poll finds buffer_percent
	ev, err := w.waitFor(in, out, timeout)
	if err != nil || ev == sys.Woken {
		return err
	}
	if ev == sys.Timeout {
		if w.stuck {
			return w.pump()
		}
		return nil // the latency is due: the next step catches up
	}
	if w.clean {
		w.clean = false
		w.ref = now // the buffer was empty when the wait began
		if zero && timeout < 0 {
			// Woken by the first event, so it was recorded about now.
			w.ref = time.Now()
		}
		w.pace.hold(w)
		if zero {
			return nil // buffer_percent 0 said "not empty": now wait for the watermark
		}
	}
	return w.pump()
}

// room is how many bytes of whole pages the pipe takes now.
func (w *worker) room() int { return (w.pipeCap - w.inPipe) / w.page * w.page }

// pump moves whole pages, trace_pipe_raw → pipe → sink, until the ring
// buffer has no full page left (a fill smaller than the room) or the sink
// takes no more (blocked). A fill as large as the room is followed by
// another once the sink took it: a backlog goes in pipe-sized batches,
// and no splice is spent on the few pages written since the last one.
func (w *worker) pump() error {
	progress := false
	for {
		n, dry, err := w.fill()
		if err != nil {
			return err
		}
		if n > 0 {
			progress = true
			if !w.dryAt.IsZero() && w.dryAt.After(w.ref) {
				w.ref = w.dryAt
			}
		}
		switch {
		case dry:
			w.dryAt = time.Now()
		case n > 0:
			w.dryAt = time.Time{}
		}
		if w.inPipe > 0 {
			m, err := w.send()
			switch {
			case errors.Is(err, sys.EAGAIN):
			case err != nil:
				return err
			}
			progress = progress || m > 0
			w.blocked = w.inPipe > 0
		}
		if dry || n == 0 || w.blocked {
			break
		}
	}
	w.stuck = !progress
	if progress {
		w.stall = backoff{}
	}
	return nil
}

// fill splices as many whole pages as the pipe has room for. It reports
// dry when trace_pipe_raw gave fewer (tracing_buffers_splice_read stops at
// the page being written). (No SPLICE_F_MOVE, which the kernel's C agent
// passes: it is a no-op since Linux 2.6.21.)
func (w *worker) fill() (moved int, dry bool, err error) {
	room := w.room()
	if room == 0 {
		return 0, false, nil
	}
	n, err := sys.SpliceRaw(w.trace, w.pipeW, room, sys.SpliceNonblock)
	switch {
	case errors.Is(err, sys.EAGAIN):
		return 0, true, nil
	case err != nil:
		return 0, false, opError(w.cpu, "splice", w.tracePath, err)
	}
	w.inPipe += n
	return n, n < room, nil
}

// send moves what the sink takes from the pipe: sys.EAGAIN when nothing.
func (w *worker) send() (int, error) {
	n, err := w.out.send(w.pipeR, w.inPipe, &w.waiter)
	w.inPipe -= n
	w.sent.Add(int64(n))
	return n, err
}

// drain sends everything recorded so far, waiting for room: the full pages
// by splice, then the page the kernel is writing by read(2), sent whole.
func (w *worker) drain() error {
	for {
		for dry := false; !dry; {
			var err error
			if _, dry, err = w.fill(); err == nil {
				err = w.flush()
			}
			if err != nil {
				return err
			}
		}
		n, err := sys.Read(w.trace, w.buf)
		if errors.Is(err, sys.EAGAIN) || (err == nil && n == 0) {
			return nil // caught up (0: a read that raced the writer)
		}
		if err != nil {
			return opError(w.cpu, "read", w.tracePath, err)
		}
		clear(w.buf[n:]) // a short read still goes out as a whole page
		if err := w.out.write(w.buf, &w.waiter); err != nil {
			return err
		}
		w.sent.Add(int64(w.page))
		if !finished(w.layout, w.buf) {
			w.partial++
			return nil // the writer's own page: nothing more up to now
		}
	}
}

// finished reports whether the writer had left page. When the next event
// does not fit, the kernel pads the sub-buffer's tail and moves on
// (rb_reset_tail): a discarded event to the end, or, with less than
// RB_EVNT_MIN_SIZE bytes left, a padding mark past the commit. So a
// finished page's data ends within RB_EVNT_MIN_SIZE bytes of its end.
func finished(l ringbuf.Layout, page []byte) bool {
	const rbEventMinSize = 8 // RB_EVNT_MIN_SIZE (kernel/trace/ring_buffer.c): two 32-bit words
	ps, err := ringbuf.ParsePage(l, page, nil)
	return err == nil && ps.DataBytes >= l.PageSize-l.DataOffset-rbEventMinSize
}

// flush sends everything in the pipe, waiting for room.
func (w *worker) flush() error {
	var b backoff
	for w.inPipe > 0 {
		_, err := w.send()
		switch {
		case errors.Is(err, sys.EAGAIN):
			err = w.waitRoom(w.out.fd(), &b)
		case err == nil:
			b = backoff{}
		}
		if err != nil {
			return err
		}
	}
	return nil
}
