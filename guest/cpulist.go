package guest

import (
	"fmt"
	"strconv"
	"strings"

	"github.com/vtrace/vtrace/proto/tracefs"
)

// ParseCPUList reads the kernel's CPU list syntax ("0-3,5,7-8", as in
// /sys/devices/system/cpu/online) and returns the CPUs in increasing order,
// without duplicates. Surrounding white space and a trailing newline are
// allowed; an empty list is an error, and so is a CPU over tracefs.MaxCPU
// (so "0-4000000000" is an error rather than a huge allocation).
func ParseCPUList(s string) ([]int, error) {
	s = strings.TrimSpace(s)
	if s == "" {
		return nil, fmt.Errorf("parse cpu list: empty")
	}
	var seen [tracefs.MaxCPU + 1]bool
	for _, part := range strings.Split(s, ",") {
		lo, hi, isRange := strings.Cut(part, "-")
		a, err := parseCPU(lo)
		if err != nil {
			return nil, fmt.Errorf("parse cpu list %q: %w", s, err)
		}
		b := a
		if isRange {
			if b, err = parseCPU(hi); err != nil {
				return nil, fmt.Errorf("parse cpu list %q: %w", s, err)
			}
			if b < a {
				return nil, fmt.Errorf("parse cpu list %q: range %s is backwards", s, part)
			}
		}
		for c := a; c <= b; c++ {
			seen[c] = true
		}
	}
	var cpus []int
	for c, ok := range seen {
		if ok {
			cpus = append(cpus, c)
		}
	}
	return cpus, nil
}

func parseCPU(s string) (int, error) {
	if s == "" || strings.TrimLeft(s, "0123456789") != "" {
		return 0, fmt.Errorf("%q is not a cpu number", s)
	}
	n, err := strconv.Atoi(s)
	if err != nil || n > tracefs.MaxCPU {
		return 0, fmt.Errorf("cpu %q is over %d", s, tracefs.MaxCPU)
	}
	return n, nil
}

// FormatCPUList writes cpus (increasing) in the kernel's list syntax.
func FormatCPUList(cpus []int) string {
	var b strings.Builder
	for i := 0; i < len(cpus); {
		j := i
		for j+1 < len(cpus) && cpus[j+1] == cpus[j]+1 {
			j++
		}
		if b.Len() > 0 {
			b.WriteByte(',')
		}
		b.WriteString(strconv.Itoa(cpus[i]))
		if j > i {
			b.WriteByte('-')
			b.WriteString(strconv.Itoa(cpus[j]))
		}
		i = j + 1
	}
	return b.String()
}

// ParseSize reads a byte count with an optional K or M suffix (powers of
// 1024, either case, an optional trailing "B" or "iB").
func ParseSize(s string) (int, error) {
	t := strings.TrimSpace(s)
	t = strings.TrimSuffix(strings.TrimSuffix(strings.TrimSuffix(t, "B"), "b"), "i")
	mult := 1
	switch {
	case strings.HasSuffix(t, "K"), strings.HasSuffix(t, "k"):
		mult, t = 1<<10, t[:len(t)-1]
	case strings.HasSuffix(t, "M"), strings.HasSuffix(t, "m"):
		mult, t = 1<<20, t[:len(t)-1]
	}
	n, err := strconv.Atoi(t)
	if err != nil || n < 0 || n > (1<<31)/mult {
		return 0, fmt.Errorf("parse size %q: want a number of bytes with an optional K or M suffix", s)
	}
	return n * mult, nil
}

// PipeSize checks a requested pipe size against the kernel's limits and
// rounds it up to a multiple of the memory page size.
func PipeSize(n, max, page int) (int, error) {
	const min = 64 << 10
	if n < min {
		return 0, fmt.Errorf("check pipe size %d: below the minimum %d (64K)", n, min)
	}
	n = (n + page - 1) / page * page
	if n > max {
		return 0, fmt.Errorf("check pipe size %d: over /proc/sys/fs/pipe-max-size (%d)", n, max)
	}
	return n, nil
}
