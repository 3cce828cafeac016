package session

import (
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/vtrace/vtrace/proto/wire"
)

// ErrSettings marks settings that cannot go in a start order: a name or an
// expression the protocol refuses (proto/wire's rules), not yet anything the
// guest's tracefs decides.
var ErrSettings = errors.New("invalid recording settings")

// CheckSettings reports whether s can be sent in a start order, as the
// encoder checks it: events, filters, clock and instance are valid names
// and lines within the protocol's bounds. Its error wraps ErrSettings and
// names the field.
func CheckSettings(s wire.Settings) error {
	if _, err := (&wire.Start{Settings: s}).MarshalBinary(); err != nil {
		return fmt.Errorf("%w: %w", ErrSettings, err)
	}
	return nil
}

// Describe prints s in one line, the way the flags spell it.
func Describe(s wire.Settings) string {
	var parts []string
	if s.IsZero() {
		parts = append(parts, "none (the guest's tracing as it is)")
	}
	if len(s.Events) > 0 {
		parts = append(parts, "events "+strings.Join(s.Events, ","))
	}
	for _, f := range s.Filters {
		parts = append(parts, fmt.Sprintf("filter %s=%s", f.Event, f.Expr))
	}
	if s.BufferKiB > 0 {
		parts = append(parts, fmt.Sprintf("buffer %d KiB per CPU", s.BufferKiB))
	}
	if s.SubbufKiB > 0 {
		parts = append(parts, fmt.Sprintf("sub-buffers of %d KiB", s.SubbufKiB))
	}
	if s.Clock != "" {
		parts = append(parts, "clock "+s.Clock)
	}
	if s.Instance != "" {
		parts = append(parts, "instance "+s.Instance)
	}
	if s.LatencyMS > 0 {
		parts = append(parts, fmt.Sprintf("latency %v", time.Duration(s.LatencyMS)*time.Millisecond))
	}
	return strings.Join(parts, "; ")
}
