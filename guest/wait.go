package guest

// How a CPU goroutine waits: poll(2) on its trace file, its sink and its
// waker; while the stream is busy, without the Go scheduler and in waits
// short enough that the runtime never preempts the goroutine.

import (
	"runtime"
	"sync"
	"sync/atomic"
	"time"

	"github.com/vtrace/vtrace/internal/sys"
	"github.com/vtrace/vtrace/internal/textlog"
)

// How the CPU goroutines keep the Go runtime out of the way (facts from
// Go's runtime/proc.go, Go 1.26):
//
//   - The runtime's monitor (sysmon, every 10 ms once nothing needs it)
//     preempts the goroutine on a P whose schedtick has not moved for
//     forcePreemptNS, 10 ms (retake → preemptone: a signal to its thread).
//     schedtick moves only when a goroutine is run afresh (execute), so a
//     goroutine that waits and splices with raw system calls (internal/sys
//     raw.go) looks to it like one running for ever.
//   - A goroutine locked to its thread (LockOSThread) pays for every
//     preemption, and every yield, with a hand-over: schedule → stoplockedm
//     gives its P to another thread (handoffp → startm) and sleeps until
//     that thread finds the goroutine and hands the P back (startlockedm).
//     That cost a tenth of the agent's CPU.
//   - A goroutine that is not locked yields (runtime.Gosched → goschedImpl
//     → schedule) on its own thread: it goes to the global run queue and
//     the same thread takes it back, waking no other thread as long as no
//     P is idle (wakep finds none). Hence GOMAXPROCS is the number of CPU
//     goroutines (reserveProcs), each CPU goroutine yields before each busy
//     wait, and a busy wait lasts at most rawWait, below sysmon's 10 ms:
//     schedtick moves between any two of sysmon's looks, nothing is
//     preempted, and sysmon sleeps 10 ms at a time.
//   - Busy waits through the scheduler (entersyscall) are worse: once
//     schedtick is stale, retake takes the P of a goroutine in a system
//     call at sysmon's next look whatever the call's age (sysretake skips
//     the refresh of syscallwhen), and every P taken resets sysmon's sleep
//     to 20 µs.
//
// Since the goroutine is not locked, a yield or a wait through the
// scheduler may resume it on another thread: after each wait it binds the
// thread it finds itself on to its CPU, and gives the thread it left back
// its CPUs (waiter.bind). How the threads are scheduled is in sched.go.

// reserveProcs sets GOMAXPROCS to workers, the number of CPU goroutines:
// a busy CPU goroutine keeps its P through its raw system calls, and with
// no P idle its yields wake no other thread. The control loop, the signal
// handler and the garbage collector run at the CPU goroutines' yields
// (every rawWait at most) or while they wait through the scheduler.
func reserveProcs(workers int) {
	if workers > 0 && runtime.GOMAXPROCS(0) != workers {
		runtime.GOMAXPROCS(workers)
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
	cpu       int
	waker     *sys.Waker
	abort     *atomic.Bool
	log       *textlog.Logger
	busy      bool      // the stream is busy: wait without the scheduler
	lastReady time.Time // when the last wait found an fd ready
	thread    int       // the thread found bound to cpu last (0: none yet)
	rebinds   uint64    // rebinds as of then
}

const (
	// rawWait bounds a wait made without the Go scheduler: below sysmon's
	// 10 ms, so that the goroutine yields between any two of its looks.
	rawWait = 9 * time.Millisecond
	// idleAfter ends a busy spell: no fd ready for that long.
	idleAfter = 20 * time.Millisecond
)

// rebinds counts the changes of any thread's binding by a CPU goroutine:
// a thread a CPU goroutine found bound to its CPU may since have been
// bound to another CPU, or given back, by another CPU goroutine.
var rebinds atomic.Uint64

// processCPUs are the CPUs the process's threads may run on, as the main
// thread found them at start: what a thread a CPU goroutine has left is
// given back.
var processCPUs, _ = sys.Affinity()

// bind makes sure the calling thread is bound to the waiter's CPU. It
// looks when the thread or rebinds changed since its last look (always
// when force), and binds the thread when it is not; the thread bound
// before, if the goroutine has left it, gets back processCPUs.
func (wt *waiter) bind(force bool) {
	tid, n := sys.ThreadID(), rebinds.Load()
	if tid == wt.thread && n == wt.rebinds && !force {
		return
	}
	if wt.thread != 0 && wt.thread != tid {
		if threads.leave(wt, wt.thread) {
			giveBack(wt.thread)
			n = rebinds.Add(1)
		}
	}
	wt.thread, wt.rebinds = tid, n
	threads.take(wt, tid)
	if cpus, err := sys.Affinity(); err == nil && len(cpus) == 1 && cpus[0] == wt.cpu {
		return
	}
	if err := sys.SetAffinity(wt.cpu); err != nil {
		wt.log.Warn("streaming from another CPU: cannot bind the thread to its own", "err", err)
		return
	}
	wt.rebinds = rebinds.Add(1)
}

// giveBack lets a thread a CPU goroutine has left run on processCPUs. It
// fails only if that thread has ended.
func giveBack(tid int) {
	if len(processCPUs) > 0 {
		sys.SetThreadAffinity(tid, processCPUs)
	}
}

// unbind gives the thread bound last back, when the CPU goroutine ends.
// (A thread that the Go runtime started from a bound thread, which
// inherits the binding, keeps it: the runtime starts a thread from
// whichever thread needs one, startm, e.g. when a CPU goroutine readies
// another goroutine.)
func (wt *waiter) unbind() {
	if wt.thread != 0 && threads.leave(wt, wt.thread) {
		giveBack(wt.thread)
		rebinds.Add(1)
	}
	wt.thread = 0
}

// threads says which CPU goroutine's waiter holds each thread bound: a
// goroutine gives back a thread it left only while no other has taken it
// since (another CPU goroutine may resume on it after a yield, and binds
// it to its own CPU).
var threads = threadOwners{m: map[int]*waiter{}}

type threadOwners struct {
	mu sync.Mutex
	m  map[int]*waiter
}

// take records wt as the holder of tid.
func (o *threadOwners) take(wt *waiter, tid int) {
	o.mu.Lock()
	o.m[tid] = wt
	o.mu.Unlock()
}

// leave forgets tid's holder if that is wt, and reports whether it was.
func (o *threadOwners) leave(wt *waiter, tid int) bool {
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.m[tid] != wt {
		return false
	}
	delete(o.m, tid)
	return true
}

// waitFor blocks until in is readable or out writable (-1: not waited
// for), the waker fires (the wake-up is cleared; Woken), a signal
// interrupts a raw wait (Woken too, without a read of the waker), or
// timeout passes (negative: no timeout).
//
// While the stream is busy (an fd was ready within idleAfter: hundreds of
// waits and splices a second) the goroutine yields, then waits without
// the Go scheduler (sys.PollInOutRaw) for at most rawWait, and splices
// without it too (sys.SpliceRaw): see the runtime's facts above. A busy
// spell ends when raw waits have found nothing ready for idleAfter: the
// next waits go through the scheduler and block without bound when
// nothing is due, so an idle stream makes no wake-ups.
func (wt *waiter) waitFor(in, out int, timeout time.Duration) (sys.Event, error) {
	var ev sys.Event
	var err error
	if wt.busy {
		t := rawWait
		if timeout >= 0 && timeout < t {
			t = timeout
		}
		runtime.Gosched()
		wt.bind(false) // the yield may have moved it; the raw wait will not
		ev, err = sys.PollInOutRaw(in, out, wt.waker, t)
		switch {
		case ev == sys.Ready:
			wt.lastReady = time.Now()
		case ev == sys.Timeout && t == rawWait && timeout != rawWait && time.Since(wt.lastReady) >= idleAfter:
			wt.busy = false
		}
	} else {
		wt.bind(false)
		start := time.Now()
		ev, err = sys.PollInOut(in, out, wt.waker, timeout)
		if ev == sys.Ready {
			wt.lastReady = time.Now()
			wt.busy = wt.lastReady.Sub(start) < idleAfter
		}
		wt.bind(false) // it may come back from the scheduler on another thread
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
	wt.bind(false)
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
	wt.bind(false)
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
