package fifo

import (
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"

	"github.com/vtrace/vtrace/internal/testutil"
	"github.com/vtrace/vtrace/proto/channel"
)

func TestCheckDomainName(t *testing.T) {
	good := []string{"vm1", "debian-12", "a.b_c", "Ünïcode", strings.Repeat("x", 255), ".hidden", "a..b"}
	for _, n := range good {
		if err := CheckDomainName(n); err != nil {
			t.Errorf("CheckDomainName(%q) = %v, want nil", n, err)
		}
	}
	bad := []string{"", ".", "..", "../x", "a/b", "/", "/etc", "a\x00b", "a\nb", "tab\there", "-rf",
		strings.Repeat("x", 256), "\xff\xfe", "del\x7f", "c1\u0085"}
	for _, n := range bad {
		err := CheckDomainName(n)
		if !errors.Is(err, ErrBadName) {
			t.Errorf("CheckDomainName(%q) = %v, want ErrBadName", n, err)
		}
		if _, err := DomainDir("", n); !errors.Is(err, ErrBadName) {
			t.Errorf("DomainDir(%q) = %v, want ErrBadName", n, err)
		}
	}
}

func TestDomainDir(t *testing.T) {
	for _, c := range []struct{ base, dom, want string }{
		{"", "vm1", "/var/lib/vtrace/vm1"},
		{"/tmp/x/", "vm1", "/tmp/x/vm1"},
	} {
		got, err := DomainDir(c.base, c.dom)
		if err != nil || got != c.want {
			t.Errorf("DomainDir(%q, %q) = %q, %v; want %q", c.base, c.dom, got, err, c.want)
		}
	}
}

func mode(t *testing.T, p string) fs.FileMode {
	t.Helper()
	st, err := os.Lstat(p)
	if err != nil {
		t.Fatal(err)
	}
	return st.Mode()
}

func gid(t *testing.T, p string) int {
	t.Helper()
	st, err := os.Lstat(p)
	if err != nil {
		t.Fatal(err)
	}
	return int(st.Sys().(*syscall.Stat_t).Gid)
}

func TestCreateRemove(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "base", "vm1")
	names := channel.Names(2)

	dry, err := Create(dir, names, Options{Group: -1, DryRun: true})
	if err != nil {
		t.Fatal(err)
	}
	if len(dry.Created) != 1+2*len(names) {
		t.Errorf("dry run would create %q, want the dir and %d FIFOs", dry.Created, 2*len(names))
	}
	if _, err := os.Lstat(dir); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("dry run made %s: %v", dir, err)
	}

	r, err := Create(dir, names, Options{Group: -1})
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(r.Created, dry.Created) || len(r.Kept) != 0 {
		t.Errorf("Create report %+v, want created %q", r, dry.Created)
	}
	if m := mode(t, dir); m != fs.ModeDir|DirPerm {
		t.Errorf("dir mode %v, want %v", m, fs.ModeDir|DirPerm)
	}
	for _, n := range names {
		in, out := Paths(dir, n)
		for _, p := range []string{in, out} {
			if m := mode(t, p); m != fs.ModeNamedPipe|FIFOPerm {
				t.Errorf("%s mode %v, want %v", p, m, fs.ModeNamedPipe|FIFOPerm)
			}
		}
	}

	// Second run: everything kept, and a dry run agrees.
	for _, dry := range []bool{true, false} {
		r, err = Create(dir, names, Options{Group: -1, DryRun: dry})
		if err != nil {
			t.Fatal(err)
		}
		if len(r.Created) != 0 || len(r.Kept) != 1+2*len(names) {
			t.Errorf("second Create (dry %v) = %+v, want all kept", dry, r)
		}
	}

	// --group on existing entries changes their group.
	r, err = Create(dir, names, Options{Group: 1})
	if err != nil {
		t.Fatal(err)
	}
	if len(r.Adjusted) != 1+2*len(names) || gid(t, dir) != 1 || gid(t, filepath.Join(dir, "agent-ctl-path.in")) != 1 {
		t.Errorf("regroup report %+v", r)
	}

	// A foreign file keeps the directory at teardown.
	foreign := filepath.Join(dir, "notes.txt")
	if err := os.WriteFile(foreign, []byte("mine"), 0o644); err != nil {
		t.Fatal(err)
	}
	r, err = Remove(dir, names, Options{Group: -1, DryRun: true})
	if err != nil || len(r.Removed) != 2*len(names) || !slices.Equal(r.Left, []string{dir}) {
		t.Errorf("dry Remove = %+v, %v", r, err)
	}
	if _, err := os.Lstat(filepath.Join(dir, "agent-ctl-path.in")); err != nil {
		t.Errorf("dry Remove removed a FIFO: %v", err)
	}
	r, err = Remove(dir, names, Options{Group: -1})
	if err != nil || len(r.Removed) != 2*len(names) || !slices.Equal(r.Left, []string{dir}) {
		t.Errorf("Remove = %+v, %v", r, err)
	}
	os.Remove(foreign)
	r, err = Remove(dir, names, Options{Group: -1})
	if err != nil || !slices.Equal(r.Removed, []string{dir}) {
		t.Errorf("Remove of the empty dir = %+v, %v", r, err)
	}
	r, err = Remove(dir, names, Options{Group: -1})
	if err != nil || len(r.Removed)+len(r.Left) != 0 {
		t.Errorf("Remove of nothing = %+v, %v", r, err)
	}
}

func TestCreateRefusesSymlinkDir(t *testing.T) {
	base := t.TempDir()
	target := filepath.Join(base, "elsewhere")
	os.Mkdir(target, 0o755)
	dir := filepath.Join(base, "vm1")
	if err := os.Symlink(target, dir); err != nil {
		t.Fatal(err)
	}
	for _, f := range []func(string, []string, Options) (Report, error){Create, Remove} {
		_, err := f(dir, channel.Names(1), Options{Group: -1})
		if err == nil || !strings.Contains(err.Error(), dir) || !strings.Contains(err.Error(), "symlink") {
			t.Errorf("error %v, want a refusal naming %s", err, dir)
		}
	}
	if ents, _ := os.ReadDir(target); len(ents) != 0 {
		t.Errorf("something was made through the symlink: %v", ents)
	}
}

func TestCreateRefusesSymlinkFIFO(t *testing.T) {
	dir := t.TempDir()
	victim := filepath.Join(t.TempDir(), "victim")
	os.WriteFile(victim, []byte("precious"), 0o600)
	link := filepath.Join(dir, "trace-path-cpu0.out")
	if err := os.Symlink(victim, link); err != nil {
		t.Fatal(err)
	}
	for _, f := range []func(string, []string, Options) (Report, error){Create, Remove} {
		_, err := f(dir, channel.Names(1), Options{Group: 0})
		if err == nil || !strings.Contains(err.Error(), link) {
			t.Errorf("error %v, want a refusal naming %s", err, link)
		}
	}
	if m := mode(t, link); m&fs.ModeSymlink == 0 {
		t.Errorf("symlink replaced: %v", m)
	}
	if m := mode(t, victim); m != 0o600 {
		t.Errorf("victim mode changed to %v", m)
	}
	if _, err := os.Lstat(filepath.Join(dir, "agent-ctl-path.in")); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("refused Create still made FIFOs: %v", err)
	}
}

func TestCreateRefusesRegularFile(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "agent-ctl-path.in")
	os.WriteFile(p, []byte("data"), 0o644)
	for _, f := range []func(string, []string, Options) (Report, error){Create, Remove} {
		_, err := f(dir, channel.Names(1), Options{Group: -1})
		if err == nil || !strings.Contains(err.Error(), p) || !strings.Contains(err.Error(), "regular file") {
			t.Errorf("error %v, want a refusal naming %s", err, p)
		}
	}
	if b, _ := os.ReadFile(p); string(b) != "data" {
		t.Errorf("regular file changed: %q", b)
	}
	// The directory itself being a regular file.
	file := filepath.Join(dir, "file")
	os.WriteFile(file, nil, 0o644)
	if _, err := Create(file, channel.Names(1), Options{Group: -1}); err == nil || !strings.Contains(err.Error(), "regular file") {
		t.Errorf("Create in a regular file: %v", err)
	}
}

func TestLookupGroup(t *testing.T) {
	if g, err := LookupGroup("root"); err != nil || g != 0 {
		t.Errorf("LookupGroup(root) = %d, %v", g, err)
	}
	if g, err := LookupGroup("42"); err != nil || g != 42 {
		t.Errorf("LookupGroup(42) = %d, %v", g, err)
	}
	if _, err := LookupGroup("no-such-group-vtrace"); err == nil {
		t.Error("LookupGroup of a missing group succeeded")
	}
}

// openAs opens every path read-write (as a reader that never blocks) in a
// shell running as uid with the supplementary groups, and returns the
// shell's error.
func openAs(t *testing.T, uid uint32, groups []uint32, paths ...string) error {
	t.Helper()
	script := `for p; do exec 3<>"$p" || exit 1; exec 3>&-; done`
	cmd := exec.Command("sh", append([]string{"-c", script, "sh"}, paths...)...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: uid, Gid: uid, Groups: groups}}
	out, err := cmd.CombinedOutput()
	if err != nil {
		return fmt.Errorf("%v: %s", err, out)
	}
	return nil
}

// TestCreateGroupAccess checks, with the kernel's own permission checks,
// who can open what Create makes while libvirt's DAC driver has given the
// FIFOs to qemu's user (as it does for the time a domain runs): qemu's user
// through the directory it cannot list, members of Options.Group through
// the ACL entry, and nobody else.
func TestCreateGroupAccess(t *testing.T) {
	testutil.NeedRoot(t)
	const group, qemu, member, stranger = 54321, 64100, 12345, 12346
	dir := filepath.Join(testutil.ReachableDir(t), "vm1")
	names := channel.Names(1)
	r, err := Create(dir, names, Options{Group: group})
	if err != nil {
		t.Fatal(err)
	}
	if len(r.Notes) != 0 {
		t.Fatalf("notes on a file system with ACLs: %q", r.Notes)
	}
	if m, g := mode(t, dir), gid(t, dir); m != fs.ModeDir|DirPerm || g != group {
		t.Errorf("dir mode %v group %d, want %v group %d", m, g, fs.ModeDir|DirPerm, group)
	}
	var fifos []string
	for _, n := range names {
		in, out := Paths(dir, n)
		fifos = append(fifos, in, out)
	}
	for _, p := range fifos {
		if m, g := mode(t, p), gid(t, p); m != fs.ModeNamedPipe|FIFOPerm || g != group {
			t.Errorf("%s: mode %v group %d, want %v group %d", p, m, g, fs.ModeNamedPipe|FIFOPerm, group)
		}
		buf := make([]byte, 256)
		n, err := syscall.Getxattr(p, aclAttr, buf)
		if err != nil || !bytes.Equal(buf[:n], groupACL(group)) {
			t.Errorf("%s: ACL %x (%v), want %x", p, buf[:max(n, 0)], err, groupACL(group))
		}
	}

	// libvirt hands the FIFOs to qemu's user and group.
	for _, p := range fifos {
		if err := os.Chown(p, qemu, qemu); err != nil {
			t.Fatal(err)
		}
	}
	if err := openAs(t, qemu, nil, fifos...); err != nil {
		t.Errorf("qemu's user cannot open its FIFOs: %v", err)
	}
	if err := openAs(t, member, []uint32{group}, fifos...); err != nil {
		t.Errorf("a member of group %d cannot open the FIFOs while qemu owns them: %v", group, err)
	}
	if err := openAs(t, stranger, nil, fifos[0]); err == nil {
		t.Errorf("a user outside group %d opened %s", group, fifos[0])
	}
	if err := openAs(t, qemu, nil, dir); err == nil {
		t.Errorf("qemu's user can list %s", dir)
	}

	// A second Create while the domain runs leaves the owner to qemu.
	r, err = Create(dir, names, Options{Group: group})
	if err != nil {
		t.Fatal(err)
	}
	if len(r.Adjusted) != len(fifos) {
		t.Errorf("Create while qemu owns the FIFOs adjusted %q, want the group of every FIFO", r.Adjusted)
	}
	for _, p := range fifos {
		st, _ := os.Lstat(p)
		if s := st.Sys().(*syscall.Stat_t); s.Uid != qemu || s.Gid != group {
			t.Errorf("%s: owner %d:%d, want %d:%d", p, s.Uid, s.Gid, qemu, group)
		}
	}
	// libvirt puts the owners back (here: root, as with remember_owner = 0);
	// the group keeps its access through the ACL.
	for _, p := range fifos {
		os.Chown(p, 0, 0)
	}
	if err := openAs(t, member, []uint32{group}, fifos...); err != nil {
		t.Errorf("a member of group %d cannot open the FIFOs after libvirt reset their owners: %v", group, err)
	}
}

func TestCreateFixesModes(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "vm1")
	if _, err := Create(dir, channel.Names(1), Options{Group: -1}); err != nil {
		t.Fatal(err)
	}
	in, _ := Paths(dir, channel.Ctl)
	// As an earlier vtrace left them: a directory qemu's user cannot pass.
	os.Chmod(dir, 0o750)
	os.Chmod(in, 0o600)
	for _, dry := range []bool{true, false} {
		r, err := Create(dir, channel.Names(1), Options{Group: -1, DryRun: dry})
		if err != nil || !slices.Equal(r.Adjusted, []string{dir, in}) {
			t.Errorf("Create (dry %v) over modes 0750/0600: %+v, %v; want %s and %s adjusted", dry, r, err, dir, in)
		}
	}
	if m := mode(t, dir); m != fs.ModeDir|DirPerm {
		t.Errorf("dir mode %v, want %v", m, fs.ModeDir|DirPerm)
	}
	if m := mode(t, in); m != fs.ModeNamedPipe|FIFOPerm {
		t.Errorf("%s mode %v, want %v", in, m, fs.ModeNamedPipe|FIFOPerm)
	}
	// Without a group no ACL is made.
	if _, err := syscall.Getxattr(in, aclAttr, make([]byte, 256)); !errors.Is(err, syscall.ENODATA) {
		t.Errorf("%s has an ACL without --group: %v", in, err)
	}
}
