package wire

import (
	"fmt"
	"strings"
	"unicode"
	"unicode/utf8"

	"github.com/vtrace/vtrace/proto/clip"
	"github.com/vtrace/vtrace/proto/tracefs"
)

// The rules a message must satisfy beyond the bounds its fields are decoded
// with (messages.go): checked before a message is encoded and after it is
// decoded, so nothing invalid goes out or comes in.

// maxQuoted bounds the untrusted text an error quotes.
const maxQuoted = 64

// ValidName reports whether s is one name of 1 to MaxName bytes of
// [A-Za-z0-9_.-], other than "." and "..": safe as a path element, in
// tracefs and on the host. Every name of the protocol and of a metadata
// directory follows this rule.
func ValidName(s string) bool {
	return nameShapeOK(s) && badNameByte(s) < 0
}

func nameShapeOK(s string) bool {
	return s != "" && len(s) <= MaxName && s != "." && s != ".."
}

// badNameByte is the index of the first byte of s not in [A-Za-z0-9_.-],
// or -1.
func badNameByte(s string) int {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '_' || c == '.' || c == '-') {
			return i
		}
	}
	return -1
}

// checkName is ValidName with an error that says what is wrong.
func checkName(what, s string) error {
	if !nameShapeOK(s) {
		return fmt.Errorf("%s %q: want 1 to %d of [A-Za-z0-9_.-], not . or ..: %w", what, clip.Text(s, maxQuoted), MaxName, ErrMalformed)
	}
	if i := badNameByte(s); i >= 0 {
		return fmt.Errorf("%s %q: byte %#x not in [A-Za-z0-9_.-]: %w", what, clip.Text(s, maxQuoted), s[i], ErrMalformed)
	}
	return nil
}

// checkPair accepts "a" + sep + "b" with two valid names, or a lone name
// when single is true.
func checkPair(what, s string, sep byte, single bool) error {
	a, b, found := strings.Cut(s, string(sep))
	if !found {
		if single {
			return checkName(what, s)
		}
		return fmt.Errorf("%s %q: want SYSTEM%cEVENT: %w", what, clip.Text(s, maxQuoted), sep, ErrMalformed)
	}
	if err := checkName(what, a); err != nil {
		return err
	}
	return checkName(what, b)
}

// checkEvent accepts "system" or "system:event", as trace-cmd's -e does.
func checkEvent(s string) error { return checkPair("event", s, ':', true) }

// checkFormatName accepts "system/event", the name of a format item.
func checkFormatName(s string) error { return checkPair("format name", s, '/', false) }

// checkText accepts printable UTF-8 of at most MaxString bytes; newlines
// and tabs only when multiline, so nothing decoded can drive a terminal.
func checkText(what, s string, multiline bool) error {
	if len(s) > MaxString {
		return fmt.Errorf("%s of %d bytes: %w", what, len(s), ErrTooLarge)
	}
	if !utf8.ValidString(s) {
		return fmt.Errorf("%s %q: not UTF-8: %w", what, clip.Text(s, maxQuoted), ErrMalformed)
	}
	for _, r := range s {
		if !printable(r, multiline) {
			return fmt.Errorf("%s %q: control character %U: %w", what, clip.Text(s, maxQuoted), r, ErrMalformed)
		}
	}
	return nil
}

func printable(r rune, multiline bool) bool {
	return !unicode.IsControl(r) || multiline && (r == '\n' || r == '\t')
}

// FreeText returns s as multiline free text that every message accepts
// (errors, stats): invalid UTF-8 and control characters other than newline
// and tab become '?', and the result is cut to at most MaxString bytes.
func FreeText(s string) string {
	s = strings.ToValidUTF8(s, "?")
	s = strings.Map(func(r rune) rune {
		if printable(r, true) {
			return r
		}
		return '?'
	}, s)
	return clip.Text(s, MaxString)
}

func checkOptName(what, s string) error {
	if s == "" {
		return nil
	}
	return checkName(what, s)
}

// checkCPUs accepts a list of CPU numbers or of CPU stats, and the list of
// CPUs not streamed beside it: at most MaxCPUs entries each, each for a CPU
// from 0 to tracefs.MaxCPU that no other entry of either list names, each
// stats entry's Raw and each reason printable.
func checkCPUs[T uint32 | CPUStats](entries []T, unstreamed []UnstreamedCPU) error {
	if len(entries) > MaxCPUs || len(unstreamed) > MaxCPUs {
		return fmt.Errorf("%d CPU entries, %d unstreamed: %w", len(entries), len(unstreamed), ErrTooLarge)
	}
	var seen [MaxCPUs]bool
	see := func(cpu uint32) error {
		if cpu > tracefs.MaxCPU {
			return fmt.Errorf("CPU %d: want 0 to %d: %w", cpu, tracefs.MaxCPU, ErrMalformed)
		}
		if seen[cpu] {
			return fmt.Errorf("CPU %d twice: %w", cpu, ErrMalformed)
		}
		seen[cpu] = true
		return nil
	}
	for _, e := range entries {
		var cpu uint32
		var raw string
		switch e := any(e).(type) {
		case uint32:
			cpu = e
		case CPUStats:
			cpu, raw = e.CPU, e.Raw
		}
		if err := see(cpu); err != nil {
			return err
		}
		if err := checkText(fmt.Sprintf("cpu%d stats", cpu), raw, true); err != nil {
			return err
		}
	}
	for _, u := range unstreamed {
		if err := see(u.CPU); err != nil {
			return err
		}
		if u.Reason == "" {
			return fmt.Errorf("CPU %d not streamed without a reason: %w", u.CPU, ErrMalformed)
		}
		if err := checkText(fmt.Sprintf("why cpu%d is not streamed", u.CPU), u.Reason, true); err != nil {
			return err
		}
	}
	return nil
}

// The rules of each message.

func (m *Hello) check() error {
	if len(m.Versions) == 0 || len(m.Versions) > MaxVersions {
		return fmt.Errorf("%d versions, want 1 to %d: %w", len(m.Versions), MaxVersions, ErrMalformed)
	}
	for _, v := range m.Versions {
		if v == 0 {
			return fmt.Errorf("version 0: %w", ErrMalformed)
		}
	}
	if err := checkText("host", m.Host, false); err != nil {
		return err
	}
	return checkText("host version", m.HostVersion, false)
}

func (m *HelloReply) check() error {
	if m.Version == 0 {
		return fmt.Errorf("version 0: %w", ErrMalformed)
	}
	if err := checkCPUs(m.CPUs, m.Unstreamed); err != nil {
		return err
	}
	if p := m.PageSize; p != 0 && (p < 4096 || p > MaxFrame || p&(p-1) != 0) {
		return fmt.Errorf("page size %d: want a power of two from 4096 to %d: %w", p, MaxFrame, ErrMalformed)
	}
	if err := checkText("agent version", m.AgentVersion, false); err != nil {
		return err
	}
	if err := checkText("release", m.Release, false); err != nil {
		return err
	}
	if err := checkOptName("clock", m.Clock); err != nil {
		return err
	}
	return checkOptName("instance", m.Instance)
}

func (m *Start) check() error { return m.Settings.check() }

func (m *StartReply) check() error {
	if err := checkText("error", m.Error, true); err != nil {
		return err
	}
	return checkCPUs(m.CPUs, m.Unstreamed)
}

func (m *Stop) check() error { return nil }

func (m *StopReply) check() error {
	if err := checkText("error", m.Error, true); err != nil {
		return err
	}
	return checkCPUs(m.CPUs, m.Unstreamed)
}

func (m *MetaRequest) check() error {
	if len(m.Items) > MaxItems {
		return fmt.Errorf("%d items: %w", len(m.Items), ErrTooLarge)
	}
	for _, k := range m.Items {
		if k == 0 {
			return fmt.Errorf("item 0: %w", ErrMalformed)
		}
	}
	return nil
}

func (m *MetaChunk) check() error {
	if m.Kind == 0 {
		return fmt.Errorf("item kind 0: %w", ErrMalformed)
	}
	switch {
	case m.Kind == MetaFormat:
		if err := checkFormatName(m.Name); err != nil {
			return err
		}
	case m.Name != "":
		return fmt.Errorf("%v item named %q: %w", m.Kind, clip.Text(m.Name, maxQuoted), ErrMalformed)
	}
	if m.Total > MaxMetaItem {
		return fmt.Errorf("%v item of %d bytes: %w", m.Kind, m.Total, ErrTooLarge)
	}
	if len(m.Data) > MaxChunk {
		return fmt.Errorf("%v chunk of %d bytes: %w", m.Kind, len(m.Data), ErrTooLarge)
	}
	if m.Offset > m.Total || uint64(len(m.Data)) > m.Total-m.Offset {
		return fmt.Errorf("%v chunk at %d of %d bytes past its total %d: %w", m.Kind, m.Offset, len(m.Data), m.Total, ErrMalformed)
	}
	if end := m.Offset + uint64(len(m.Data)); m.Last != (end == m.Total) {
		return fmt.Errorf("%v chunk ends at %d of %d with last=%t: %w", m.Kind, end, m.Total, m.Last, ErrMalformed)
	}
	return nil
}

func (m *MetaEnd) check() error {
	if len(m.Errors) > MaxErrors {
		return fmt.Errorf("%d errors: %w", len(m.Errors), ErrTooLarge)
	}
	for _, s := range m.Errors {
		if err := checkText("error", s, true); err != nil {
			return err
		}
	}
	return nil
}

func (m *Stats) check() error { return checkCPUs(m.CPUs, nil) }

func (m *StatusRequest) check() error { return nil }

func (m *Status) check() error {
	if err := m.Settings.check(); err != nil {
		return err
	}
	if err := checkCPUs(m.CPUs, m.Unstreamed); err != nil {
		return err
	}
	return checkText("agent version", m.AgentVersion, false)
}

func (m *Error) check() error { return checkText("message", m.Message, true) }

func (m *ClockProbe) check() error {
	if m.Clock == "" {
		return fmt.Errorf("clock probe without a clock: %w", ErrMalformed)
	}
	return checkName("clock", m.Clock)
}

func (m *ClockReply) check() error {
	if err := checkOptName("clock", m.Clock); err != nil {
		return err
	}
	if err := checkText("error", m.Error, true); err != nil {
		return err
	}
	if m.Received > m.Sent {
		return fmt.Errorf("clock read at %d on receipt, after the %d at the reply: %w", m.Received, m.Sent, ErrMalformed)
	}
	return nil
}

func (s *Settings) check() error {
	if len(s.Events) > MaxEvents || len(s.Filters) > MaxEvents {
		return fmt.Errorf("%d events, %d filters: %w", len(s.Events), len(s.Filters), ErrTooLarge)
	}
	for _, ev := range s.Events {
		if err := checkEvent(ev); err != nil {
			return err
		}
	}
	for _, f := range s.Filters {
		if err := checkEvent(f.Event); err != nil {
			return err
		}
		if f.Expr == "" {
			return fmt.Errorf("filter of %s: empty expression: %w", f.Event, ErrMalformed)
		}
		if err := checkText("filter of "+f.Event, f.Expr, false); err != nil {
			return err
		}
	}
	if err := checkOptName("clock", s.Clock); err != nil {
		return err
	}
	if k := s.SubbufKiB; k != 0 && (k < MinSubbufKiB || k > MaxSubbufKiB || k&(k-1) != 0) {
		return fmt.Errorf("sub-buffer size %d KiB: want a power of two from %d to %d: %w", k, MinSubbufKiB, MaxSubbufKiB, ErrMalformed)
	}
	if s.LatencyMS > MaxLatencyMS {
		return fmt.Errorf("latency %d ms: more than %d: %w", s.LatencyMS, MaxLatencyMS, ErrTooLarge)
	}
	return checkOptName("instance", s.Instance)
}
