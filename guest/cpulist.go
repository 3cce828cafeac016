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
