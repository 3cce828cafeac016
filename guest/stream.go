package guest

// The hot path: a CPU's pages from per_cpu/cpuN/trace_pipe_raw through a
// private pipe to its sink (sink.go), the waits, and the lossless stop.

import (
	"errors"
	"fmt"
	"runtime"
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
	buf       []byte // one page, for the read(2) of the stop
	tracePath string
	trace     int
	pipeR     int // the private pipe's ends
	pipeW     int
	pipeCap   int // bytes the pipe holds
	inPipe    int // bytes in the pipe now
	out       sink
	orders    chan order
	exited    chan struct{}
	stall     backoff // streaming: readies that moved nothing

	sent    atomic.Int64 // bytes sent in this recording; read by the control goroutine
	partial int64        // partial pages sent in this recording
}

// newWorker opens the CPU's trace file (tracePath), a pipe of pipeSize
// bytes, a waker and, last, its sink (openSink). The worker owns them all.
func newWorker(cpu int, tracePath string, l ringbuf.Layout, pipeSize int, openSink func(cpu int) (sink, error),
	abort *atomic.Bool, log *textlog.Logger) (_ *worker, err error) {
	w := &worker{
		waiter: waiter{cpu: cpu, abort: abort, log: log.With("cpu", cpu)},
		layout: l, page: l.PageSize, buf: make([]byte, l.PageSize),
		tracePath: tracePath, trace: -1, pipeR: -1, pipeW: -1,
		orders: make(chan order, 1), exited: make(chan struct{}),
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

// run is the CPU goroutine: on a thread of its own (bound to the CPU at
// each start), it obeys orders until a quit, a failure or an abort.
func (w *worker) run() error {
	// Never unlocked: the thread's affinity is changed for good (at each
	// start, obey), so the thread ends with the goroutine.
	runtime.LockOSThread()
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

// stream moves what it can, then waits once: for a page, for room in the
// sink, or for an order.
func (w *worker) stream() error {
	moved, dry, err := w.fill()
	if err != nil {
		return err
	}
	blocked := false
	if w.inPipe > 0 {
		n, err := w.send()
		switch {
		case errors.Is(err, sys.EAGAIN):
			blocked = true
		case err != nil:
			return err
		}
		moved += n
	}
	if moved > 0 {
		w.stall = backoff{}
		return nil
	}
	in, out := w.trace, -1 // wait for a page
	if blocked {
		out = w.out.fd() // and for room
		if !dry {
			in = -1 // the pipe is full: room only
		}
	}
	_, err = w.wait(in, out, &w.stall)
	return err
}

// fill splices as many whole pages as the pipe has room for. It reports
// whether trace_pipe_raw had no full page to give. (No SPLICE_F_MOVE, which
// the kernel's C agent passes: it is a no-op since Linux 2.6.21.)
func (w *worker) fill() (moved int, dry bool, err error) {
	room := (w.pipeCap - w.inPipe) / w.page * w.page
	if room == 0 {
		return 0, false, nil
	}
	n, err := sys.Splice(w.trace, w.pipeW, room, sys.SpliceNonblock)
	switch {
	case errors.Is(err, sys.EAGAIN), err == nil && n == 0:
		return 0, true, nil
	case err != nil:
		return 0, false, opError(w.cpu, "splice", w.tracePath, err)
	}
	w.inPipe += n
	return n, false, nil
}

// send moves what the sink takes from the pipe: sys.EAGAIN when nothing.
func (w *worker) send() (int, error) {
	n, err := w.out.send(w.pipeR, w.inPipe, &w.waiter)
	w.inPipe -= n
	w.sent.Add(int64(n))
	return n, err
}

// drain sends everything recorded so far: the full pages by splice, then
// the page the kernel is writing by read(2), sent whole.
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

// backoff paces the rare waits where poll(2) says ready but nothing moves
// (with buffer_percent 0 trace_pipe_raw polls readable on a partial page,
// which splice does not take; a virtio port whose host end is closed polls
// hung up): sleep minBackoff, doubling up to maxBackoff, until a move.
type backoff struct{ d time.Duration }

const (
	minBackoff = time.Millisecond
	maxBackoff = 250 * time.Millisecond
)

// waiter is how a CPU goroutine waits: in poll(2), on the fds it needs and
// on its waker, through which orders and an abort reach it.
type waiter struct {
	cpu   int
	waker *sys.Waker
	abort *atomic.Bool
	log   *textlog.Logger
}

// wait blocks until in is readable or out writable (-1: not waited for) or
// the waker fires (woken; the wake-up is cleared). After a ready that moved
// nothing it sleeps b's delay instead; b nil never backs off.
func (wt *waiter) wait(in, out int, b *backoff) (woken bool, err error) {
	var ev sys.Event
	if b != nil && b.d > 0 {
		if b.d < maxBackoff && 2*b.d >= maxBackoff {
			wt.log.Debug("ready but nothing moves: waiting", "every", maxBackoff)
		}
		ev, err = sys.PollInOut(-1, -1, wt.waker, b.d)
		b.d = min(2*b.d, maxBackoff)
	} else {
		ev, err = sys.PollInOut(in, out, wt.waker, -1)
		if ev == sys.Ready && b != nil {
			b.d = minBackoff // if the next try moves nothing
		}
	}
	if err != nil {
		return false, opError(wt.cpu, "poll", "", err)
	}
	if ev == sys.Woken {
		wt.waker.Clear()
	}
	return ev == sys.Woken, nil
}

// waitRoom waits until fd takes data, in the middle of a stop or of a
// stdout record: orders wait for it to end; only an abort cuts it short.
func (wt *waiter) waitRoom(fd int, b *backoff) error {
	if wt.abort.Load() {
		return errAborted
	}
	woken, err := wt.wait(-1, fd, b)
	if err == nil && woken && wt.abort.Load() {
		return errAborted
	}
	return err
}
