// Package fifo makes and removes the named pipes that back a domain's trace
// channels: DIR/NAME.in (host to guest) and DIR/NAME.out (guest to host) for
// agent-ctl-path and every trace-path-cpuN, where DIR is the domain's FIFO
// directory (by default /var/lib/vtrace/<domain>).
//
// Nothing here follows a symlink where the directory or a FIFO should be, and
// nothing replaces a regular file: the directory is opened with O_NOFOLLOW and
// every FIFO is made and checked relative to that open directory, so a path
// swapped under us cannot redirect the work elsewhere.
//
// Lifecycle: Create and Remove open and close their own descriptors; nothing
// stays open when they return.
package fifo

import (
	"errors"
	"fmt"
	"path/filepath"
	"strings"
	"unicode"
	"unicode/utf8"
)

// DefaultBase is the directory under which each domain gets its FIFO directory.
const DefaultBase = "/var/lib/vtrace"

// maxNameLen bounds a domain name used as a path component (NAME_MAX).
const maxNameLen = 255

// ErrBadName is returned (wrapped) for a domain name unsafe as a path component.
var ErrBadName = errors.New("domain name is not safe as a directory name")

// CheckDomainName refuses a name that could not be used as one path
// component: empty, ".", "..", containing "/" or NUL or a control character,
// starting with "-", not UTF-8, or longer than 255 bytes.
func CheckDomainName(name string) error {
	bad := func(why string) error { return fmt.Errorf("check domain name %q: %w: %s", name, ErrBadName, why) }
	switch {
	case name == "":
		return bad("empty")
	case name == "." || name == "..":
		return bad("a dot directory")
	case len(name) > maxNameLen:
		return bad(fmt.Sprintf("longer than %d bytes", maxNameLen))
	case strings.HasPrefix(name, "-"):
		return bad(`starts with "-"`)
	case !utf8.ValidString(name):
		return bad("not UTF-8")
	}
	for _, r := range name {
		switch {
		case r == '/':
			return bad(`contains "/"`)
		case r == 0:
			return bad("contains NUL")
		case unicode.IsControl(r):
			return bad("contains a control character")
		}
	}
	return nil
}

// DomainDir returns the FIFO directory of domain under base (DefaultBase when
// base is empty), after checking that domain is safe as a path component.
func DomainDir(base, domain string) (string, error) {
	if err := CheckDomainName(domain); err != nil {
		return "", err
	}
	if base == "" {
		base = DefaultBase
	}
	return filepath.Join(base, domain), nil
}

// Paths returns the two FIFO paths of channel name in dir: NAME.in, written
// by the host and read by the guest, and NAME.out, written by the guest.
func Paths(dir, name string) (in, out string) {
	p := filepath.Join(dir, name)
	return p + ".in", p + ".out"
}
