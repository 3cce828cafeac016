package wire

import (
	"fmt"
	"strings"
	"unicode"
	"unicode/utf8"
)

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
		return fmt.Errorf("%s %q: want 1 to %d of [A-Za-z0-9_.-], not . or ..: %w", what, clip(s), MaxName, ErrMalformed)
	}
	if i := badNameByte(s); i >= 0 {
		return fmt.Errorf("%s %q: byte %#x not in [A-Za-z0-9_.-]: %w", what, clip(s), s[i], ErrMalformed)
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
		return fmt.Errorf("%s %q: want SYSTEM%cEVENT: %w", what, clip(s), sep, ErrMalformed)
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

// checkText accepts printable UTF-8 of at most max bytes; newlines and
// tabs only when multiline, so nothing decoded can drive a terminal.
func checkText(what, s string, multiline bool) error {
	if len(s) > MaxString {
		return fmt.Errorf("%s of %d bytes: %w", what, len(s), ErrTooLarge)
	}
	if !utf8.ValidString(s) {
		return fmt.Errorf("%s %q: not UTF-8: %w", what, clip(s), ErrMalformed)
	}
	for _, r := range s {
		if unicode.IsControl(r) && !(multiline && (r == '\n' || r == '\t')) {
			return fmt.Errorf("%s %q: control character %U: %w", what, clip(s), r, ErrMalformed)
		}
	}
	return nil
}

func checkOptName(what, s string) error {
	if s == "" {
		return nil
	}
	return checkName(what, s)
}

// checkCPUs accepts distinct CPU numbers below MaxCPUs, at most MaxCPUs.
func checkCPUs(cpus []uint32) error {
	if len(cpus) > MaxCPUs {
		return fmt.Errorf("%d CPUs: %w", len(cpus), ErrTooLarge)
	}
	var seen [MaxCPUs]bool
	for _, c := range cpus {
		if c >= MaxCPUs {
			return fmt.Errorf("CPU %d: want below %d: %w", c, MaxCPUs, ErrMalformed)
		}
		if seen[c] {
			return fmt.Errorf("CPU %d twice: %w", c, ErrMalformed)
		}
		seen[c] = true
	}
	return nil
}

func clip(s string) string {
	if len(s) > 64 {
		return s[:64] + "..."
	}
	return s
}
