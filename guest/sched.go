package guest

// How the agent's threads are scheduled: every thread of the process, so
// that whichever thread the Go runtime gives a CPU goroutine is woken as
// promptly as the one it waited on.

import (
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/vtrace/vtrace/internal/sys"
	"golang.org/x/sys/unix"
)

// cpuSlice is the time slice the agent's threads ask of the fair
// scheduler (sys.Sched.Slice): the shortest it grants. A CPU goroutine
// runs for tens of microseconds a wake-up, on a CPU that the traced
// workload may keep busy. EEVDF lets a woken thread preempt the running
// one only when its virtual deadline comes first, and the deadline
// follows the slice: with the default one (1.4 ms on the 2-CPU benchmark
// machine, /sys/kernel/debug/sched/base_slice_ns) the wake-ups at the
// watermark often waited, and at full load (every event, the default
// 1410 KiB buffer: about 5 ms of events) 0.19% of the events were
// overwritten meanwhile; with this slice none were (docs/PERFORMANCE.md).
const cpuSlice = 100 * time.Microsecond

// processSched is how the process's threads were scheduled at start (the
// main thread's, with the default slice): what they get back.
// processSchedErr says it is unknown; the agent then leaves scheduling
// alone.
var processSched, processSchedErr = func() (sys.Sched, error) {
	s, err := sys.ThreadSched(0)
	s.Slice = 0
	return s, err
}()

// agentSched is how the agent's threads are scheduled while it runs:
// SCHED_FIFO at rtPriority when that is above 0; else as the process was,
// with the short slice (a process started under a real-time policy, by
// chrt, keeps it). The process's reset-on-fork flag is kept: a user
// without CAP_SYS_NICE may not clear it.
func agentSched(rtPriority int) sys.Sched {
	s := processSched
	switch {
	case rtPriority > 0:
		s = sys.Sched{Policy: unix.SCHED_FIFO, Priority: uint32(rtPriority), ResetOnFork: processSched.ResetOnFork}
	case s.Fair():
		s.Slice = cpuSlice
	}
	return s
}

// scheduling counts the agents of the process that hold its threads'
// scheduling (held): the first sets it, the last puts processSched back.
var scheduling struct {
	sync.Mutex
	holders int
	held    sys.Sched
}

// scheduleProcess schedules every thread of the process as s (threads
// started later inherit it from the thread that starts them) until the
// release it returns is called; release reports the threads it could not
// put back. While another agent of the process holds another scheduling,
// it is an error. On an error (EPERM: a real-time policy needs
// CAP_SYS_NICE, or RLIMIT_RTPRIO at least the priority) every thread is
// put back and release does nothing.
func scheduleProcess(s sys.Sched) (release func() error, err error) {
	none := func() error { return nil }
	if processSchedErr != nil {
		return none, processSchedErr
	}
	scheduling.Lock()
	defer scheduling.Unlock()
	switch {
	case scheduling.holders > 0 && scheduling.held != s:
		return none, fmt.Errorf("another agent of this process holds its threads' scheduling as %+v", scheduling.held)
	case scheduling.holders == 0:
		if err := scheduleThreads(s); err != nil {
			scheduleThreads(processSched)
			return none, err
		}
		scheduling.held = s
	}
	scheduling.holders++
	var once sync.Once
	return func() (err error) {
		once.Do(func() {
			scheduling.Lock()
			defer scheduling.Unlock()
			if scheduling.holders--; scheduling.holders == 0 {
				if err = scheduleThreads(processSched); err != nil {
					err = fmt.Errorf("put the threads' scheduling back: %w", err)
				}
			}
		})
		return err
	}, nil
}

// scheduleThreads schedules every thread of the process as s, looking
// again until a look finds no thread it had not seen (a thread started
// meanwhile by one not yet scheduled inherited the old scheduling; at most
// ten looks). A thread that ended meanwhile is no error; the others are
// joined.
func scheduleThreads(s sys.Sched) error {
	seen := map[int]bool{}
	var errs []error
	for range 10 {
		tids, err := sys.Threads()
		if err != nil {
			return err
		}
		found := false
		for _, tid := range tids {
			if seen[tid] {
				continue
			}
			seen[tid], found = true, true
			if err := sys.SetThreadSched(tid, s); err != nil && !errors.Is(err, unix.ESRCH) {
				errs = append(errs, fmt.Errorf("thread %d: %w", tid, err))
			}
		}
		if !found {
			break
		}
	}
	return errors.Join(errs...)
}
