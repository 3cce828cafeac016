package sys

import (
	"fmt"
	"os"
	"strings"

	"golang.org/x/sys/unix"
)

// TraceClock is an ftrace trace clock that user space reads with
// clock_gettime: the kernel's trace_clocks[] table (kernel/trace/trace.c)
// stamps events of "mono" with ktime_get_mono_fast_ns, "mono_raw" with
// ktime_get_raw_fast_ns, "boot" with ktime_get_boot_fast_ns and "tai" with
// ktime_get_tai_fast_ns, the NMI-safe readers of CLOCK_MONOTONIC,
// CLOCK_MONOTONIC_RAW, CLOCK_BOOTTIME and CLOCK_TAI. The default "local"
// and "global" clocks are the sched clock, which user space cannot read.
type TraceClock struct {
	Name string // as in tracefs trace_clock
	id   int32
}

// userClocks are the trace clocks TraceClockByName finds, in the order
// an error lists them.
var userClocks = []TraceClock{
	{"mono", unix.CLOCK_MONOTONIC},
	{"mono_raw", unix.CLOCK_MONOTONIC_RAW},
	{"boot", unix.CLOCK_BOOTTIME},
	{"tai", unix.CLOCK_TAI},
}

// UserClockNames lists the trace clocks user space can read, for messages.
func UserClockNames() []string {
	names := make([]string, len(userClocks))
	for i, c := range userClocks {
		names[i] = c.Name
	}
	return names
}

// TraceClockByName returns the trace clock name if user space can read it,
// else an error that says which clocks it can.
func TraceClockByName(name string) (TraceClock, error) {
	for _, c := range userClocks {
		if c.Name == name {
			return c, nil
		}
	}
	return TraceClock{}, fmt.Errorf("trace clock %s: not readable from user space (want %s)", name, strings.Join(UserClockNames(), ", "))
}

// Now reads the clock, in nanoseconds: the units of its trace timestamps.
func (c TraceClock) Now() (int64, error) {
	var ts unix.Timespec
	if err := unix.ClockGettime(c.id, &ts); err != nil {
		return 0, os.NewSyscallError("clock_gettime", err)
	}
	return ts.Nano(), nil
}
