package guest

// How a CPU goroutine waits: poll(2) on its trace file, its sink and its
// waker, without the Go scheduler while the stream is busy.

import (
	"runtime"
	"sync/atomic"
	"time"

	"github.com/vtrace/vtrace/internal/sys"
	"github.com/vtrace/vtrace/internal/textlog"
)

// reserveProcs makes GOMAXPROCS at least workers+1: a CPU goroutine keeps
// its P through its raw system calls (see waitFor), and the control loop,
// the signal handler and the garbage collector need one too.
func reserveProcs(workers int) {
	if runtime.GOMAXPROCS(0) <= workers {
		runtime.GOMAXPROCS(workers + 1)
	}
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

// next is the pause before the next try, and doubles the one after.
func (b *backoff) next() time.Duration {
	d := max(b.d, minBackoff)
	b.d = min(2*d, maxBackoff)
	return d
}

// waiter is how a CPU goroutine waits: in poll(2), on the fds it needs and
// on its waker, through which orders and an abort reach it.
type waiter struct {
	cpu   int
	waker *sys.Waker
	abort *atomic.Bool
	log   *textlog.Logger
	busy  bool // the last wait ended within rawWait: wait without the scheduler
}

// rawWait bounds a wait made without the Go scheduler.
const rawWait = 20 * time.Millisecond

// waitFor blocks until in is readable or out writable (-1: not waited
// for), the waker fires (the wake-up is cleared; Woken), a signal
// interrupts a raw wait (Woken too, without a read of the waker), or
// timeout passes (negative: no timeout).
//
// While waits end within rawWait (a busy stream: hundreds of waits and
// splices a second), they are made without the Go scheduler
// (sys.PollInOutRaw), each bounded by rawWait; so are the splices
// (sys.SpliceRaw). Through the scheduler, a goroutine that never yields
// has its P retaken by the runtime's monitor (sysmon) at nearly every
// system call, and the monitor then wakes every 20 µs: in the benchmark
// that was most of the agent's wake-ups and a fifth of its CPU. A raw wait
// that runs out its rawWait ends the busy spell (it reports Timeout): the
// next waits go through the scheduler and block without bound when
// nothing is due, so an idle stream still makes no wake-ups.
func (wt *waiter) waitFor(in, out int, timeout time.Duration) (sys.Event, error) {
	var ev sys.Event
	var err error
	if wt.busy {
		t := rawWait
		if timeout >= 0 && timeout < t {
			t = timeout
		}
		ev, err = sys.PollInOutRaw(in, out, wt.waker, t)
		if ev == sys.Timeout && t == rawWait && timeout != rawWait {
			wt.busy = false
		}
	} else {
		start := time.Now()
		ev, err = sys.PollInOut(in, out, wt.waker, timeout)
		wt.busy = ev == sys.Ready && time.Since(start) < rawWait
	}
	if err != nil {
		return 0, opError(wt.cpu, "poll", "", err)
	}
	switch ev {
	case sys.Woken:
		wt.waker.Clear()
	case sys.Interrupted: // a preemption signal: the orders are looked at anyway
		ev = sys.Woken
	}
	return ev, nil
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
