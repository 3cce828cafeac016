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
// chrt, keeps it).
func agentSched(rtPriority int) sys.Sched {
	if rtPriority > 0 {
		return sys.Sched{Policy: unix.SCHED_FIFO, Priority: uint32(rtPriority)}
	}
	s := processSched
	if s.Fair() {
		s.Slice = cpuSlice
	}
	return s
}

// scheduling counts the agents of the process that hold its threads'
// scheduling: the first sets it, the last puts processSched back.
var scheduling struct {
	sync.Mutex
	holders int
}

// scheduleProcess schedules every thread of the process as s (threads
// started later inherit it from the thread that starts them) until the
// release it returns is called. While another agent of the process holds
// the scheduling, that agent's stays. On an error (EPERM: a real-time
// policy needs CAP_SYS_NICE, or RLIMIT_RTPRIO at least the priority)
// every thread is put back and release does nothing.
func scheduleProcess(s sys.Sched) (release func(), err error) {
	if processSchedErr != nil {
		return func() {}, processSchedErr
	}
	scheduling.Lock()
	defer scheduling.Unlock()
	if scheduling.holders == 0 {
		if err := scheduleThreads(s); err != nil {
			scheduleThreads(processSched)
			return func() {}, err
		}
	}
	scheduling.holders++
	var once sync.Once
	return func() {
		once.Do(func() {
			scheduling.Lock()
			defer scheduling.Unlock()
			if scheduling.holders--; scheduling.holders == 0 {
				scheduleThreads(processSched)
			}
		})
	}, nil
}

// scheduleThreads schedules every thread of the process as s, looking
// twice: a thread started meanwhile by a thread not yet scheduled
// inherited the old scheduling. A thread that ended meanwhile is no error.
func scheduleThreads(s sys.Sched) error {
	for range 2 {
		tids, err := sys.Threads()
		if err != nil {
			return err
		}
		for _, tid := range tids {
			if err := sys.SetThreadSched(tid, s); err != nil && !errors.Is(err, unix.ESRCH) {
				return fmt.Errorf("thread %d: %w", tid, err)
			}
		}
	}
	return nil
}
