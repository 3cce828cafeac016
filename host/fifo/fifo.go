package fifo

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/user"
	"path/filepath"
	"slices"
	"strconv"
	"strings"

	"github.com/vtrace/vtrace/internal/sys"
	"github.com/vtrace/vtrace/proto/channel"
)

// Permissions of what Create makes. The group may be set (Options.Group) so
// that a qemu running as another user can open the FIFOs.
const (
	DirPerm  = 0o750
	FIFOPerm = 0o660
)

// Options tunes Create and Remove.
type Options struct {
	// Group, when >= 0, is the group given to the directory and the FIFOs
	// (existing ones included). -1 leaves the group alone.
	Group int
	// DryRun reports what would be done and changes nothing.
	DryRun bool
	// KeepDir makes Remove leave the directory even when it ends up empty.
	KeepDir bool
}

// Report says what Create or Remove did (or, with DryRun, would do), as
// absolute paths.
type Report struct {
	Created   []string // made by this call (the directory and FIFOs)
	Kept      []string // already there and of the right kind
	Regrouped []string // existing entries whose group was changed
	Removed   []string // FIFOs (and the directory) removed by Remove
	Left      []string // Remove: the directory, left because it holds other files
}

// LookupGroup resolves a group name or numeric id to a gid.
func LookupGroup(group string) (int, error) {
	if n, err := strconv.Atoi(group); err == nil && n >= 0 {
		return n, nil
	}
	g, err := user.LookupGroup(group)
	if err != nil {
		return -1, fmt.Errorf("look up group %q: %w", group, err)
	}
	n, err := strconv.Atoi(g.Gid)
	if err != nil {
		return -1, fmt.Errorf("look up group %q: gid %q is not a number", group, g.Gid)
	}
	return n, nil
}

// Create makes dir (mode DirPerm, and its missing parents 0755) and the two
// FIFOs NAME.in and NAME.out (mode FIFOPerm) for every channel name. An
// existing directory or FIFO is kept. A symlink where the directory or a FIFO
// should be, a regular file or anything else that is not a FIFO is an error
// naming the path, and nothing is changed in it or through it.
func Create(dir string, names []string, opts Options) (Report, error) {
	var r Report
	dir = filepath.Clean(dir)
	if err := checkChannelNames(names); err != nil {
		return r, err
	}
	exists, err := statDir(dir)
	switch {
	case err != nil:
		return r, err
	case exists:
		r.Kept = append(r.Kept, dir)
	default:
		r.Created = append(r.Created, dir)
		if opts.DryRun {
			for _, n := range names {
				in, out := Paths(dir, n)
				r.Created = append(r.Created, in, out)
			}
			return r, nil
		}
		if err := makeDir(dir, opts.Group); err != nil {
			return r, err
		}
	}

	return createIn(dir, names, opts, r, opts.DryRun)
}

// statDir says whether dir exists as a real directory; a symlink or any
// other kind of file in its place is an error naming it.
func statDir(dir string) (bool, error) {
	st, err := os.Lstat(dir)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return false, nil
	case err != nil:
		return false, fmt.Errorf("inspect %s: %w", dir, err)
	case st.Mode()&fs.ModeSymlink != 0:
		return false, fmt.Errorf("refuse to follow %s: it is a symlink, not a directory", dir)
	case !st.IsDir():
		return false, fmt.Errorf("refuse to use %s: it is a %s, not a directory", dir, kind(st.Mode()))
	}
	return true, nil
}

// makeDir creates dir with DirPerm exactly (umask aside) and the group.
func makeDir(dir string, gid int) error {
	if err := os.MkdirAll(filepath.Dir(dir), 0o755); err != nil {
		return fmt.Errorf("create %s: %w", filepath.Dir(dir), err)
	}
	if err := os.Mkdir(dir, DirPerm); err != nil {
		return fmt.Errorf("create %s: %w", dir, err)
	}
	fd, err := openDir(dir)
	if err != nil {
		return err
	}
	defer sys.Close(fd)
	if err := sys.FchmodFd(fd, DirPerm); err != nil {
		return fmt.Errorf("set mode of %s: %w", dir, err)
	}
	if gid >= 0 {
		if err := sys.FchownFd(fd, -1, gid); err != nil {
			return fmt.Errorf("set group of %s: %w", dir, err)
		}
	}
	return nil
}

func openDir(dir string) (int, error) {
	fd, err := sys.OpenDirNoFollow(dir)
	if sys.IsSymlinkRefused(err) {
		return -1, fmt.Errorf("refuse to follow %s: it is a symlink, not a directory: %w", dir, err)
	}
	if err != nil {
		return -1, fmt.Errorf("open %s: %w", dir, err)
	}
	return fd, nil
}

func createIn(dir string, names []string, opts Options, r Report, dry bool) (Report, error) {
	fd, err := openDir(dir)
	if err != nil {
		return r, err
	}
	defer sys.Close(fd)
	if !dry && opts.Group >= 0 && !slices.Contains(r.Created, dir) {
		st, err := sys.FstatFd(fd)
		if err != nil {
			return r, fmt.Errorf("inspect %s: %w", dir, err)
		}
		if st.Gid != opts.Group {
			if err := sys.FchownFd(fd, -1, opts.Group); err != nil {
				return r, fmt.Errorf("set group of %s: %w", dir, err)
			}
			r.Regrouped = append(r.Regrouped, dir)
		}
	}

	// Check everything first, so a refusal leaves the directory as it was.
	var missing []string
	var existing []string
	for _, n := range names {
		for _, f := range []string{n + ".in", n + ".out"} {
			p := filepath.Join(dir, f)
			st, err := sys.Fstatat(fd, f)
			switch {
			case errors.Is(err, fs.ErrNotExist):
				missing = append(missing, f)
			case err != nil:
				return r, fmt.Errorf("inspect %s: %w", p, err)
			case st.Mode&fs.ModeNamedPipe != 0:
				existing = append(existing, f)
			case st.Mode&fs.ModeSymlink != 0:
				return r, fmt.Errorf("refuse to follow %s: it is a symlink, not a FIFO", p)
			default:
				return r, fmt.Errorf("refuse to replace %s: it is a %s, not a FIFO", p, kind(st.Mode))
			}
		}
	}
	for _, f := range existing {
		p := filepath.Join(dir, f)
		r.Kept = append(r.Kept, p)
		if dry || opts.Group < 0 {
			continue
		}
		st, err := sys.Fstatat(fd, f)
		if err != nil {
			return r, fmt.Errorf("inspect %s: %w", p, err)
		}
		if st.Gid != opts.Group {
			if err := sys.Fchownat(fd, f, -1, opts.Group); err != nil {
				return r, fmt.Errorf("set group of %s: %w", p, err)
			}
			r.Regrouped = append(r.Regrouped, p)
		}
	}
	for _, f := range missing {
		p := filepath.Join(dir, f)
		if dry {
			r.Created = append(r.Created, p)
			continue
		}
		if err := sys.Mkfifoat(fd, f, FIFOPerm); err != nil {
			return r, fmt.Errorf("create FIFO %s: %w", p, err)
		}
		r.Created = append(r.Created, p)
		// mkfifo's mode passed through the umask; set it exactly.
		if err := sys.FchmodatNoFollow(fd, f, FIFOPerm); err != nil {
			return r, fmt.Errorf("set mode of %s: %w", p, err)
		}
		if opts.Group >= 0 {
			if err := sys.Fchownat(fd, f, -1, opts.Group); err != nil {
				return r, fmt.Errorf("set group of %s: %w", p, err)
			}
		}
	}
	return r, nil
}

// Remove deletes the FIFOs NAME.in and NAME.out of every channel name from
// dir, then dir itself if nothing else is left in it. Missing entries are
// fine (Remove is idempotent). A symlink in place of dir, or anything but a
// FIFO in place of a FIFO, is an error and nothing is removed.
func Remove(dir string, names []string, opts Options) (Report, error) {
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

	var fifos []string
	for _, n := range names {
		for _, f := range []string{n + ".in", n + ".out"} {
			p := filepath.Join(dir, f)
			st, err := sys.Fstatat(fd, f)
			switch {
			case errors.Is(err, fs.ErrNotExist):
			case err != nil:
				return r, fmt.Errorf("inspect %s: %w", p, err)
			case st.Mode&fs.ModeNamedPipe != 0:
				fifos = append(fifos, f)
			default:
				return r, fmt.Errorf("refuse to remove %s: it is a %s, not a FIFO", p, kind(st.Mode))
			}
		}
	}
	for _, f := range fifos {
		p := filepath.Join(dir, f)
		if !opts.DryRun {
			if err := sys.Unlinkat(fd, f, false); err != nil && !errors.Is(err, fs.ErrNotExist) {
				return r, fmt.Errorf("remove %s: %w", p, err)
			}
		}
		r.Removed = append(r.Removed, p)
	}

	if opts.KeepDir {
		return r, nil
	}
	if opts.DryRun {
		left, err := othersIn(dir, names)
		if err != nil {
			return r, err
		}
		if left {
			r.Left = append(r.Left, dir)
		} else {
			r.Removed = append(r.Removed, dir)
		}
		return r, nil
	}
	// rmdir does not follow a symlink put in the directory's place meanwhile.
	err = os.Remove(dir)
	switch {
	case err == nil:
		r.Removed = append(r.Removed, dir)
	case sys.IsDirNotEmpty(err):
		r.Left = append(r.Left, dir)
	default:
		return r, fmt.Errorf("remove %s: %w", dir, err)
	}
	return r, nil
}

// othersIn reports whether dir holds entries other than the FIFOs of names.
func othersIn(dir string, names []string) (bool, error) {
	ents, err := os.ReadDir(dir)
	if err != nil {
		return false, fmt.Errorf("list %s: %w", dir, err)
	}
	ours := map[string]bool{}
	for _, n := range names {
		ours[n+".in"], ours[n+".out"] = true, true
	}
	for _, e := range ents {
		if !ours[e.Name()] {
			return true, nil
		}
	}
	return false, nil
}

func checkChannelNames(names []string) error {
	for _, n := range names {
		if n != channel.Ctl {
			if _, ok := channel.ParseData(n); !ok {
				return fmt.Errorf("check channel name %q: not %s or %sN", n, channel.Ctl, channel.DataPrefix)
			}
		}
	}
	return nil
}

func kind(m fs.FileMode) string {
	switch {
	case m.IsRegular():
		return "regular file"
	case m&fs.ModeSymlink != 0:
		return "symlink"
	case m.IsDir():
		return "directory"
	case m&fs.ModeSocket != 0:
		return "socket"
	case m&fs.ModeDevice != 0:
		return "device"
	case m&fs.ModeNamedPipe != 0:
		return "FIFO"
	}
	return "special file"
}

// Names lists the channels that have a FIFO (NAME.in or NAME.out) in dir,
// control port first, then by CPU. A missing dir has none.
func Names(dir string) ([]string, error) {
	st, err := os.Lstat(dir)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("inspect %s: %w", dir, err)
	}
	if !st.IsDir() {
		return nil, nil // Create and Remove say why they refuse it
	}
	ents, err := os.ReadDir(dir)
	if err != nil {
		return nil, fmt.Errorf("list %s: %w", dir, err)
	}
	ctl, cpus := false, []int{}
	for _, e := range ents {
		if e.Type()&fs.ModeNamedPipe == 0 {
			continue
		}
		n, ok := strings.CutSuffix(e.Name(), ".in")
		if !ok {
			n, ok = strings.CutSuffix(e.Name(), ".out")
		}
		if !ok {
			continue
		}
		if n == channel.Ctl {
			ctl = true
		} else if cpu, ok := channel.ParseData(n); ok && !slices.Contains(cpus, cpu) {
			cpus = append(cpus, cpu)
		}
	}
	slices.Sort(cpus)
	var names []string
	if ctl {
		names = append(names, channel.Ctl)
	}
	for _, c := range cpus {
		names = append(names, channel.Data(c))
	}
	return names, nil
}
