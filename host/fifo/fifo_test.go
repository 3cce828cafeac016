package fifo

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"

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
	if len(r.Regrouped) != 1+2*len(names) || gid(t, dir) != 1 || gid(t, filepath.Join(dir, "agent-ctl-path.in")) != 1 {
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
