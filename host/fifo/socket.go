package fifo

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"

	"github.com/vtrace/vtrace/internal/sys"
)

// MaxSocketPath is the longest unix socket path the kernel takes
// (sizeof(sun_path) less its terminating NUL, include/uapi/linux/un.h).
const MaxSocketPath = 107

// SocketPath returns DIR/NAME, the unix socket of channel name, checked to
// fit a socket address: a long domain name can make it too long, and then
// the error says to choose a shorter --dir.
func SocketPath(dir, name string) (string, error) {
	p := filepath.Join(dir, name)
	if len(p) > MaxSocketPath {
		return "", fmt.Errorf("check socket path %s: %d bytes, more than a unix socket address holds (%d): choose a shorter --dir",
			p, len(p), MaxSocketPath)
	}
	return p, nil
}

// PrepareSockets makes dir (as Create does: mode DirPerm, opts.Group) for
// the unix sockets DIR/NAME of the channel names, which libvirt creates
// when it attaches the channels, and checks that each is missing or a
// socket: libvirt unlinks the path before it binds, so anything else there
// (a regular file, a FIFO, a symlink) is refused, naming it, before any of
// it is touched. Report.Kept lists sockets already there.
func PrepareSockets(dir string, names []string, opts Options) (Report, error) {
	var r Report
	dir = filepath.Clean(dir)
	if err := checkChannelNames(names); err != nil {
		return r, err
	}
	for _, n := range names {
		if _, err := SocketPath(dir, n); err != nil {
			return r, err
		}
	}
	if existed, err := ensureDir(dir, opts, &r); err != nil || !existed {
		return r, err
	}
	fd, err := openDir(dir)
	if err != nil {
		return r, err
	}
	defer sys.Close(fd)
	socks, err := socketFiles(fd, dir, names, "replace")
	if err != nil {
		return r, err
	}
	for _, s := range socks {
		r.Kept = append(r.Kept, filepath.Join(dir, s))
	}
	changed, err := fixDir(fd, dir, opts.Group, opts.DryRun)
	if err != nil {
		return r, err
	}
	if changed {
		r.Adjusted = append(r.Adjusted, dir)
	}
	return r, nil
}

// AdjustSockets gives the sockets of names in dir, once libvirt made them,
// the mode FIFOPerm and, when opts.Group >= 0, that group and its ACL
// entry, as Create does for FIFOs: libvirt's DAC driver gives a socket it
// creates to qemu's user, and the ACL entry lets the group's members
// connect all the same. A missing socket is skipped.
func AdjustSockets(dir string, names []string, opts Options) (Report, error) {
	var r Report
	fd, err := openDir(filepath.Clean(dir))
	if err != nil {
		return r, err
	}
	defer sys.Close(fd)
	socks, err := socketFiles(fd, dir, names, "adjust")
	if err != nil {
		return r, err
	}
	noACL := false
	for _, s := range socks {
		changed, acl, err := fixFIFO(fd, dir, s, opts.Group, opts.DryRun)
		if err != nil {
			return r, err
		}
		noACL = noACL || !acl
		if changed {
			r.Adjusted = append(r.Adjusted, filepath.Join(dir, s))
		}
	}
	if noACL {
		r.Notes = append(r.Notes, fmt.Sprintf("the file system of %s has no POSIX ACLs: members of group %d cannot connect to "+
			"the sockets libvirt gave to qemu's user", dir, opts.Group))
	}
	return r, nil
}

// RemoveSockets deletes the unix sockets DIR/NAME of every channel name,
// then dir if nothing else is left in it (unless opts.KeepDir). Missing
// entries are fine; anything but a socket in place of one is refused and
// nothing is removed.
func RemoveSockets(dir string, names []string, opts Options) (Report, error) {
	var r Report
	dir = filepath.Clean(dir)
	if err := checkChannelNames(names); err != nil {
		return r, err
	}
	if exists, err := statDir(dir); err != nil || !exists {
		return r, err
	}
	fd, err := openDir(dir)
	if err != nil {
		return r, err
	}
	defer sys.Close(fd)
	socks, err := socketFiles(fd, dir, names, "remove")
	if err != nil {
		return r, err
	}
	for _, s := range socks {
		if !opts.DryRun {
			if err := sys.Unlinkat(fd, s, false); err != nil && !errors.Is(err, fs.ErrNotExist) {
				return r, fmt.Errorf("remove %s: %w", filepath.Join(dir, s), err)
			}
		}
		r.Removed = append(r.Removed, filepath.Join(dir, s))
	}
	if opts.KeepDir {
		return r, nil
	}
	ents, err := os.ReadDir(dir)
	if err != nil {
		return r, fmt.Errorf("list %s: %w", dir, err)
	}
	left := len(ents)
	if opts.DryRun {
		left -= len(socks)
	}
	if left > 0 {
		r.Left = append(r.Left, dir)
		return r, nil
	}
	if !opts.DryRun {
		if err := os.Remove(dir); err != nil {
			if sys.IsDirNotEmpty(err) {
				r.Left = append(r.Left, dir)
				return r, nil
			}
			return r, fmt.Errorf("remove %s: %w", dir, err)
		}
	}
	r.Removed = append(r.Removed, dir)
	return r, nil
}

// socketFiles returns the names of the channels that are sockets in
// directory fd (dir); a missing one is skipped, anything else refused
// with verb ("refuse to VERB PATH: it is a ..., not a socket").
func socketFiles(fd int, dir string, names []string, verb string) ([]string, error) {
	var socks []string
	for _, n := range names {
		p := filepath.Join(dir, n)
		st, err := sys.Fstatat(fd, n)
		switch {
		case errors.Is(err, fs.ErrNotExist):
		case err != nil:
			return nil, fmt.Errorf("inspect %s: %w", p, err)
		case st.Mode.Type() == fs.ModeSocket:
			socks = append(socks, n)
		default:
			return nil, fmt.Errorf("refuse to %s %s: it is a %s, not a socket", verb, p, kind(st.Mode))
		}
	}
	return socks, nil
}
