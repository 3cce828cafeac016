package fifo

import (
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/user"
	"path/filepath"
	"slices"
	"strconv"

	"github.com/vtrace/vtrace/internal/sys"
	"github.com/vtrace/vtrace/proto/channel"
)

// Permissions of what Create makes, chosen for a qemu that runs as its own
// user (libvirt's default: Debian's libvirt-qemu), with libvirt's DAC driver
// giving it the FIFOs while the domain runs:
//
//   - DirPerm: the owner (root) changes the directory; its group (Options.Group)
//     lists it and opens what is in it; everyone else, qemu's user among them,
//     may only pass through it (search, no listing), as libvirt's own
//     /var/lib/libvirt/images (mode 0711) lets qemu reach disk images.
//   - FIFOPerm: owner and group read and write, nobody else. While the domain
//     runs the owner and group are qemu's (libvirt chowns them, and puts the
//     old ones back when it stops); with Options.Group the FIFOs also carry a
//     POSIX ACL entry for that group, so its members keep their access then.
const (
	DirPerm  = 0o751
	FIFOPerm = 0o660
)

// Options tunes Create and Remove.
type Options struct {
	// Group, when >= 0, is the group given to the directory and the FIFOs
	// (existing ones included), and named in an ACL entry of every FIFO so
	// that the group keeps read and write access while libvirt has handed
	// the FIFO to qemu's user. -1 leaves groups and ACLs alone.
	Group int
	// DryRun reports what would be done and changes nothing.
	DryRun bool
	// KeepDir makes Remove leave the directory even when it ends up empty.
	KeepDir bool
}

// Report says what Create or Remove did (or, with DryRun, would do), as
// absolute paths.
type Report struct {
	Created  []string // made by this call (the directory and FIFOs)
	Kept     []string // already there and of the right kind
	Adjusted []string // existing entries whose mode, group or ACL was changed
	Removed  []string // FIFOs (and the directory) removed by Remove
	Left     []string // Remove: the directory, left because it holds other files
	// Notes are things a person should know that did not stop Create: a
	// file system without POSIX ACLs, for one.
	Notes []string
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
// FIFOs NAME.in and NAME.out (mode FIFOPerm) for every channel name, with
// opts.Group as their group and, on the FIFOs, that group's ACL entry. An
// existing directory or FIFO is kept, and its mode, group and ACL are set as
// a new one's would be (reported as Adjusted). A symlink where the
// directory or a FIFO should be, a regular file or anything else that is
// not a FIFO is an error naming the path, and nothing is changed in it or
// through it. A file system without POSIX ACLs is not an error: Create
// leaves the FIFOs without the entry and says so in Report.Notes.
func Create(dir string, names []string, opts Options) (Report, error) {
	var r Report
	dir = filepath.Clean(dir)
	if err := checkChannelNames(names); err != nil {
		return r, err
	}
	existed, err := ensureDir(dir, opts, &r)
	switch {
	case err != nil:
		return r, err
	case existed:
		r.Kept = append(r.Kept, dir)
	case opts.DryRun:
		for _, n := range names {
			in, out := Paths(dir, n)
			r.Created = append(r.Created, in, out)
		}
		return r, nil
	}
	return createIn(dir, names, opts, r)
}

// ensureDir makes dir (makeDir) when it is missing, unless opts.DryRun,
// and lists it in r.Created then; it says whether dir was there already.
func ensureDir(dir string, opts Options, r *Report) (existed bool, err error) {
	if existed, err = statDir(dir); err != nil || existed {
		return existed, err
	}
	r.Created = append(r.Created, dir)
	if opts.DryRun {
		return false, nil
	}
	return false, makeDir(dir, opts.Group)
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
	_, err = fixDir(fd, dir, gid, false)
	return err
}

// fixDir gives the directory open at fd the mode DirPerm and, when gid >= 0,
// the group gid. It reports whether anything was (or, with dry, would be)
// changed.
func fixDir(fd int, dir string, gid int, dry bool) (bool, error) {
	st, err := sys.FstatFd(fd)
	if err != nil {
		return false, fmt.Errorf("inspect %s: %w", dir, err)
	}
	chmod := st.Mode.Perm() != DirPerm
	chgrp := gid >= 0 && st.Gid != gid
	if dry || (!chmod && !chgrp) {
		return chmod || chgrp, nil
	}
	if chgrp {
		if err := sys.FchownFd(fd, -1, gid); err != nil {
			return false, fmt.Errorf("set group of %s: %w", dir, err)
		}
	}
	// After chown, which may clear set-id bits.
	if err := sys.FchmodFd(fd, DirPerm); err != nil {
		return false, fmt.Errorf("set mode of %s: %w", dir, err)
	}
	return true, nil
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

func createIn(dir string, names []string, opts Options, r Report) (Report, error) {
	dry := opts.DryRun
	fd, err := openDir(dir)
	if err != nil {
		return r, err
	}
	defer sys.Close(fd)
	if !slices.Contains(r.Created, dir) {
		changed, err := fixDir(fd, dir, opts.Group, dry)
		if err != nil {
			return r, err
		}
		if changed {
			r.Adjusted = append(r.Adjusted, dir)
		}
	}

	// Check everything first, so a refusal leaves the directory as it was.
	existing, missing, err := fifoFiles(fd, dir, names, func(p string, m fs.FileMode) error {
		if m&fs.ModeSymlink != 0 {
			return fmt.Errorf("refuse to follow %s: it is a symlink, not a FIFO", p)
		}
		return fmt.Errorf("refuse to replace %s: it is a %s, not a FIFO", p, kind(m))
	})
	if err != nil {
		return r, err
	}
	noACL := false
	for _, f := range existing {
		p := filepath.Join(dir, f)
		r.Kept = append(r.Kept, p)
		changed, acl, err := fixFIFO(fd, dir, f, opts.Group, dry)
		if err != nil {
			return r, err
		}
		noACL = noACL || !acl
		if changed {
			r.Adjusted = append(r.Adjusted, p)
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
		// mkfifo's mode passed through the umask: fixFIFO sets it exactly.
		_, acl, err := fixFIFO(fd, dir, f, opts.Group, false)
		if err != nil {
			return r, err
		}
		noACL = noACL || !acl
	}
	if noACL {
		r.Notes = append(r.Notes, fmt.Sprintf("the file system of %s has no POSIX ACLs: members of group %d can open the FIFOs"+
			" only while the domain is off (while it runs, libvirt gives them to qemu's user and group)", dir, opts.Group))
	}
	return r, nil
}

// fixFIFO gives the FIFO name of directory fd the mode FIFOPerm and, when
// gid >= 0, the group gid and gid's ACL entry (groupACL). It reports whether
// anything was (or, with dry, would be) changed, and false for acl when the
// file system refuses ACLs.
func fixFIFO(fd int, dir, name string, gid int, dry bool) (changed, acl bool, err error) {
	p := filepath.Join(dir, name)
	st, err := sys.Fstatat(fd, name)
	if err != nil {
		return false, true, fmt.Errorf("inspect %s: %w", p, err)
	}
	chmod := st.Mode.Perm() != FIFOPerm
	chgrp := gid >= 0 && st.Gid != gid
	setACL := false
	acl = true
	var want []byte
	if gid >= 0 {
		want = groupACL(gid)
		have, err := sys.GetxattrNoFollow(fd, name, aclAttr)
		switch {
		case sys.IsNotSupported(err):
			acl = false
		case err != nil && !sys.IsNoXattr(err):
			return false, true, fmt.Errorf("read the ACL of %s: %w", p, err)
		default:
			setACL = !bytes.Equal(have, want)
		}
	}
	changed = chmod || chgrp || setACL
	if dry || !changed {
		return changed, acl, nil
	}
	if chgrp {
		if err := sys.Fchownat(fd, name, -1, gid); err != nil {
			return false, acl, fmt.Errorf("set group of %s: %w", p, err)
		}
	}
	if err := sys.FchmodatNoFollow(fd, name, FIFOPerm); err != nil {
		return false, acl, fmt.Errorf("set mode of %s: %w", p, err)
	}
	if setACL {
		// The ACL's owner, group and other entries restate FIFOPerm.
		err := sys.SetxattrNoFollow(fd, name, aclAttr, want)
		switch {
		case sys.IsNotSupported(err):
			acl = false
		case err != nil:
			return false, acl, fmt.Errorf("set the ACL of %s: %w", p, err)
		}
	}
	return true, acl, nil
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

	fifos, _, err := fifoFiles(fd, dir, names, func(p string, m fs.FileMode) error {
		return fmt.Errorf("refuse to remove %s: it is a %s, not a FIFO", p, kind(m))
	})
	if err != nil {
		return r, err
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

// fifoFiles sorts the files NAME.in and NAME.out of every channel name in
// directory fd (dir) into FIFOs and missing ones, in that order; anything
// else there is refused with refuse's error.
func fifoFiles(fd int, dir string, names []string, refuse func(path string, m fs.FileMode) error) (fifos, missing []string, err error) {
	for _, n := range names {
		for _, f := range []string{n + ".in", n + ".out"} {
			p := filepath.Join(dir, f)
			st, err := sys.Fstatat(fd, f)
			switch {
			case errors.Is(err, fs.ErrNotExist):
				missing = append(missing, f)
			case err != nil:
				return nil, nil, fmt.Errorf("inspect %s: %w", p, err)
			case st.Mode&fs.ModeNamedPipe != 0:
				fifos = append(fifos, f)
			default:
				return nil, nil, refuse(p, st.Mode)
			}
		}
	}
	return fifos, missing, nil
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
