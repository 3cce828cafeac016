package session

import (
	"fmt"
	"strconv"
	"strings"

	"github.com/vtrace/vtrace/proto/wire"
)

// SettingsFlags are a recording's settings as given on the command line.
type SettingsFlags struct {
	Events     []string // each "system" or "system:event", or a comma-separated list of them
	Filters    []string // each EVENT=EXPR
	BufferSize string   // per CPU: KiB, or a number with a K, M or G suffix
	Clock      string
	Instance   string
}

// Settings checks the flags and turns them into the protocol's Settings.
func (f SettingsFlags) Settings() (wire.Settings, error) {
	var s wire.Settings
	for _, list := range f.Events {
		for _, ev := range strings.Split(list, ",") {
			if ev = strings.TrimSpace(ev); ev != "" {
				s.Events = append(s.Events, ev)
			}
		}
	}
	for _, fl := range f.Filters {
		ev, expr, ok := strings.Cut(fl, "=")
		ev, expr = strings.TrimSpace(ev), strings.TrimSpace(expr)
		if !ok || ev == "" || expr == "" {
			return s, fmt.Errorf("check --filter %q: want EVENT=EXPR, as in sched:sched_switch='prev_pid != 0'", fl)
		}
		s.Filters = append(s.Filters, wire.Filter{Event: ev, Expr: expr})
	}
	if f.BufferSize != "" {
		kib, err := parseKiB(f.BufferSize)
		if err != nil {
			return s, err
		}
		s.BufferKiB = kib
	}
	s.Clock, s.Instance = f.Clock, f.Instance
	// The encoder checks every name and bound.
	if _, err := (&wire.Start{Settings: s}).MarshalBinary(); err != nil {
		return s, fmt.Errorf("check the recording's settings: %w", err)
	}
	return s, nil
}

// parseKiB reads a size in KiB: "4096", "512K", "4M", "1G".
func parseKiB(v string) (uint64, error) {
	num, mult := strings.TrimSpace(v), uint64(1)
	if n := len(num); n > 0 {
		switch num[n-1] {
		case 'k', 'K':
			num = num[:n-1]
		case 'm', 'M':
			num, mult = num[:n-1], 1<<10
		case 'g', 'G':
			num, mult = num[:n-1], 1<<20
		}
	}
	n, err := strconv.ParseUint(num, 10, 64)
	if err != nil || n == 0 || n > (1<<40)/mult {
		return 0, fmt.Errorf("check --buffer-size %q: want a positive size in KiB, or with a K, M or G suffix (4096, 512K, 4M)", v)
	}
	return n * mult, nil
}

// Describe prints s in one line, the way the flags spell it.
func Describe(s wire.Settings) string {
	if s.IsZero() {
		return "none (the guest's tracing as it is)"
	}
	var parts []string
	if len(s.Events) > 0 {
		parts = append(parts, "events "+strings.Join(s.Events, ","))
	}
	for _, f := range s.Filters {
		parts = append(parts, fmt.Sprintf("filter %s=%s", f.Event, f.Expr))
	}
	if s.BufferKiB > 0 {
		parts = append(parts, fmt.Sprintf("buffer %d KiB per CPU", s.BufferKiB))
	}
	if s.Clock != "" {
		parts = append(parts, "clock "+s.Clock)
	}
	if s.Instance != "" {
		parts = append(parts, "instance "+s.Instance)
	}
	return strings.Join(parts, "; ")
}
