package main

import (
	"bytes"
	"context"
	"debug/elf"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/vtrace/vtrace/dist"
	"github.com/vtrace/vtrace/internal/testutil"
)

// maxSize bounds the guest binary, built as make builds it: 3 MB.
const maxSize = 3_000_000

// TestGuestBinaryDeps: the guest binary links none of the host's
// libraries.
func TestGuestBinaryDeps(t *testing.T) {
	out, err := exec.Command("go", "list", "-deps", ".").CombinedOutput()
	if err != nil {
		t.Fatalf("go list -deps: %v\n%s", err, out)
	}
	deps := strings.Fields(string(out))
	if len(deps) < 10 {
		t.Fatalf("go list -deps listed %d packages: %q", len(deps), deps)
	}
	for _, d := range deps {
		for _, banned := range []string{"github.com/digitalocean/go-libvirt", "golang.org/x/crypto", "github.com/spf13/cobra",
			"github.com/spf13/pflag", "github.com/vtrace/vtrace/host", "github.com/klauspost/compress", "net",
			"log/slog"} {
			if d == banned || strings.HasPrefix(d, banned+"/") {
				t.Errorf("the guest binary imports %s", d)
			}
		}
	}
}

// TestGuestBinaryBuild builds the guest binary as make does, from a git
// checkout of its packages, and checks that it is static, at most maxSize
// bytes, and reports the checkout's revision.
func TestGuestBinaryBuild(t *testing.T) {
	git := testutil.NeedProgram(t, "git", "git")
	src := checkout(t, git)
	bin := filepath.Join(t.TempDir(), "vtrace-guest")
	cmd := exec.Command("go", "build", "-trimpath", "-buildvcs=true", "-ldflags", "-s -w", "-o", bin, "./cmd/vtrace-guest")
	cmd.Dir = src
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	st, err := os.Stat(bin)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("vtrace-guest: %d bytes", st.Size())
	if st.Size() > maxSize {
		t.Errorf("vtrace-guest is %d bytes, over %d", st.Size(), maxSize)
	}
	f, err := elf.Open(bin)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	for _, p := range f.Progs {
		if p.Type == elf.PT_INTERP {
			t.Errorf("vtrace-guest has a program interpreter: it is not static")
		}
	}

	rev, err := exec.Command(git, "-C", src, "rev-parse", "HEAD").Output()
	if err != nil {
		t.Fatal(err)
	}
	for _, args := range [][]string{{"version"}, {"--version"}, {"guest", "version"}} {
		out, err := exec.Command(bin, args...).CombinedOutput()
		if err != nil {
			t.Fatalf("vtrace-guest %q: %v\n%s", args, err, out)
		}
		for _, want := range []string{"vtrace-guest v0.0.0-", "revision: " + strings.TrimSpace(string(rev)) + "\n", "time:", "go:       go1."} {
			if !strings.Contains(string(out), want) {
				t.Errorf("vtrace-guest %q lacks %q:\n%s", args, want, out)
			}
		}
	}
}

// checkout copies go.mod, go.sum and the guest binary's packages of this
// module into a new git repository with one commit, and returns its
// directory.
func checkout(t *testing.T, git string) string {
	t.Helper()
	repo := testutil.Repo(t)
	out, err := exec.Command("go", "list", "-deps", "-f", "{{if not .Standard}}{{.Dir}}{{end}}", ".").Output()
	if err != nil {
		t.Fatalf("go list: %v", err)
	}
	dst := t.TempDir()
	copyFile := func(rel string) {
		b, err := os.ReadFile(filepath.Join(repo, rel))
		if err != nil {
			t.Fatal(err)
		}
		if err := os.MkdirAll(filepath.Join(dst, filepath.Dir(rel)), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dst, rel), b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	copyFile("go.mod")
	copyFile("go.sum")
	for _, dir := range strings.Fields(string(out)) {
		rel, err := filepath.Rel(repo, dir)
		if err != nil || strings.HasPrefix(rel, "..") {
			continue // a module outside this one
		}
		entries, err := os.ReadDir(dir)
		if err != nil {
			t.Fatal(err)
		}
		for _, e := range entries {
			if e.Type().IsRegular() && !strings.HasSuffix(e.Name(), "_test.go") {
				copyFile(filepath.Join(rel, e.Name()))
			}
		}
	}
	for _, args := range [][]string{{"init", "-q"}, {"add", "-A"},
		{"-c", "user.name=vtrace test", "-c", "user.email=test@vtrace.invalid", "commit", "-q", "-m", "guest binary"}} {
		if out, err := exec.Command(git, append([]string{"-C", dst}, args...)...).CombinedOutput(); err != nil {
			t.Fatalf("git %q: %v\n%s", args, err, out)
		}
	}
	return dst
}

type exitCase struct {
	prog string
	args []string
	want int
}

// run executes the case as main does and checks the exit code and, for an
// error, that stderr starts with the program's name.
func (tc exitCase) run(t *testing.T) (stdout string) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	if tc.want == 2 {
		cancel() // anything that got as far as running stops at once
	}
	defer cancel()
	var out, errOut bytes.Buffer
	got := execute(ctx, tc.prog, tc.args, &out, &errOut)
	if got != tc.want {
		t.Errorf("%s %q: exit code %d, want %d\nstdout: %.300s\nstderr: %.300s", tc.prog, tc.args, got, tc.want, out.String(), errOut.String())
	}
	if tc.want != 0 && !strings.HasPrefix(errOut.String(), tc.prog+": ") {
		t.Errorf("%s %q: stderr %q, want the error after %q", tc.prog, tc.args, errOut.String(), tc.prog+": ")
	}
	return out.String()
}

func TestExitCodes(t *testing.T) {
	root := t.TempDir()
	var cases []exitCase
	for _, prog := range []string{"vtrace", "vtrace-guest"} {
		for _, pre := range [][]string{{"guest"}, nil} {
			with := func(args ...string) []string { return append(append([]string{}, pre...), args...) }
			for _, args := range [][]string{
				{"bogus"}, {"agent", "bogus"}, {"agent", "--no-such-flag"}, {"agent", "-x"},
				{"agent", "--pipe-size", "32K"}, {"agent", "--pipe-size", "1.5M"}, {"agent", "--pipe-size", "0"},
				{"agent", "--pipe-size", "64P"}, {"agent", "--cpus", "3-1"}, {"agent", "--cpus", ""},
				{"agent", "--buffer-percent", "0"}, {"agent", "--buffer-percent", "101"}, {"agent", "--drain-timeout", "x"},
				{"agent", "--rt-priority", "100"}, {"agent", "--rt-priority", "-1"}, {"agent", "--rt-priority", "high"},
				{"agent", "--verbose=maybe"}, {"version", "extra"}, {"version", "--short"},
				{"install", "--init", "upstart"}, {"install", "--now", "--root", root}, {"install", "--prefix", "usr"},
				{"install", "extra"}, {"uninstall", "--bogus"},
			} {
				cases = append(cases, exitCase{prog, with(args...), 2})
			}
			for _, args := range [][]string{{}, {"agent", "-h"}, {"agent", "--help"}, {"version"}, {"help"}, {"install", "-h"}} {
				cases = append(cases, exitCase{prog, with(args...), 0})
			}
		}
		cases = append(cases, exitCase{prog, []string{"--version"}, 0}, exitCase{prog, []string{"--help"}, 0},
			exitCase{prog, []string{"host", "setup", "vm1"}, 2},
			exitCase{prog, []string{"agent", "--tracefs", filepath.Join(root, "none"), "--ports-dir", root}, 1})
	}
	for _, tc := range cases {
		tc.run(t)
	}
}

// TestHelpShowsFlags: `agent --help` lists the shared flags and the text
// the host binary's help has.
func TestHelpShowsFlags(t *testing.T) {
	out := exitCase{"vtrace", []string{"guest", "agent", "--help"}, 0}.run(t)
	for _, want := range []string{"Stream each CPU's ftrace ring-buffer pages", "Usage:\n  vtrace guest agent [flags]",
		"  -s, --pipe-size size", "      --buffer-percent int"} {
		if !strings.Contains(out, want) {
			t.Errorf("help lacks %q:\n%s", want, out)
		}
	}
}

// TestInstallRoot installs into a file tree for each init system and
// removes it again.
func TestInstallRoot(t *testing.T) {
	for _, tc := range []struct {
		init  string
		files []string
	}{
		{"systemd", []string{"/etc/systemd/system/" + dist.Unit, "/etc/udev/rules.d/" + dist.UdevRule}},
		{"sysv", []string{"/etc/init.d/vtrace-agent"}},
		{"openrc", []string{"/etc/init.d/vtrace-agent"}},
	} {
		root := t.TempDir()
		out := exitCase{"vtrace-guest", []string{"install", "--root", root, "--init", tc.init, "--prefix", "/opt/vt"}, 0}.run(t)
		self, err := os.Executable()
		if err != nil {
			t.Fatal(err)
		}
		want, _ := os.ReadFile(self)
		got, err := os.ReadFile(filepath.Join(root, "opt/vt/bin/vtrace-guest"))
		if err != nil || !bytes.Equal(got, want) {
			t.Errorf("--init %s: /opt/vt/bin/vtrace-guest is not the running binary (%v)", tc.init, err)
		}
		for _, f := range tc.files {
			b, err := os.ReadFile(filepath.Join(root, f))
			if err != nil {
				t.Errorf("--init %s: %v\n%s", tc.init, err, out)
				continue
			}
			if bytes.Contains(b, []byte("@BINDIR@")) {
				t.Errorf("--init %s: %s keeps @BINDIR@", tc.init, f)
			}
			if tc.init != "systemd" || f == "/etc/systemd/system/"+dist.Unit {
				if !bytes.Contains(b, []byte("/opt/vt/bin/vtrace-guest")) {
					t.Errorf("--init %s: %s does not run /opt/vt/bin/vtrace-guest", tc.init, f)
				}
			}
		}
		exitCase{"vtrace-guest", []string{"uninstall", "--root", root, "--init", tc.init, "--prefix", "/opt/vt"}, 0}.run(t)
		for _, f := range append(tc.files, "/opt/vt/bin/vtrace-guest") {
			if _, err := os.Stat(filepath.Join(root, f)); !os.IsNotExist(err) {
				t.Errorf("--init %s: uninstall left %s (%v)", tc.init, f, err)
			}
		}
	}
}
