package dist_test

import (
	"bytes"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/vtrace/vtrace/dist"
	"github.com/vtrace/vtrace/internal/testutil"
)

// TestIntegrationMakeInstall runs make install into a temporary DESTDIR,
// then reads what it installed with the tools that use it: man renders the
// pages, bash completes with the completion script, systemd-analyze
// verifies the unit, and vtrace-guest install writes the same service
// files; make uninstall then leaves no file behind.
func TestIntegrationMakeInstall(t *testing.T) {
	repo := testutil.Repo(t)
	makeBin := testutil.NeedProgram(t, "make", "make")
	man := testutil.NeedProgram(t, "man", "man-db groff-base")
	analyze := testutil.NeedProgram(t, "systemd-analyze", "systemd")
	bashCompletion := "/usr/share/bash-completion/bash_completion"
	_, err := os.Stat(bashCompletion)
	testutil.Need(t, err == nil, "bash-completion", "apt-get install -y --no-install-recommends bash-completion")

	tmp := t.TempDir()
	dest := filepath.Join(tmp, "dest")
	vars := []string{"PREFIX=/usr/local", "DESTDIR=" + dest, "BINOUT=" + filepath.Join(tmp, "bin"), "DOCSOUT=" + filepath.Join(tmp, "docs")}
	runMake := func(target string, more ...string) {
		t.Helper()
		cmd := exec.Command(makeBin, append(append([]string{"-C", repo, target}, vars...), more...)...)
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("make %s: %v\n%s", target, err, out)
		}
	}
	runMake("install")

	files := installed(t, dest)
	for path, mode := range map[string]fs.FileMode{
		"/usr/local/bin/vtrace":                                  0o755,
		"/usr/local/bin/vtrace-guest":                            0o755,
		"/usr/local/share/man/man1/vtrace.1":                     0o644,
		"/usr/local/share/man/man1/vtrace-host-collect.1":        0o644,
		"/usr/local/share/man/man1/vtrace-guest-agent.1":         0o644,
		"/usr/local/share/man/man1/vtrace-version.1":             0o644,
		"/usr/local/share/bash-completion/completions/vtrace":    0o644,
		"/usr/local/share/zsh/site-functions/_vtrace":            0o644,
		"/usr/local/share/fish/vendor_completions.d/vtrace.fish": 0o644,
		"/usr/local/lib/systemd/system/vtrace-agent.service":     0o644,
		"/usr/local/lib/udev/rules.d/60-vtrace-agent.rules":      0o644,
		"/etc/init.d/vtrace-agent":                               0o755,
	} {
		got, ok := files[path]
		if !ok {
			t.Errorf("make install did not install %s", path)
		} else if got != mode {
			t.Errorf("%s: mode %v, want %v", path, got, mode)
		}
	}
	pages, _ := filepath.Glob(filepath.Join(dest, "usr/local/share/man/man1/*.1"))
	if len(pages) < 15 {
		t.Errorf("%d man pages, want one per command (15 or more)", len(pages))
	}
	at := func(p string) string { return filepath.Join(dest, p) }

	// man renders a page, and finds it by name on a MANPATH.
	manEnv := append(os.Environ(), "MANPAGER=cat", "PAGER=cat", "MANWIDTH=200", "LC_ALL=C.UTF-8")
	cmd := exec.Command(man, "-l", at("/usr/local/share/man/man1/vtrace-host-collect.1"))
	cmd.Env = manEnv
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("man -l vtrace-host-collect.1: %v\n%s", err, out)
	}
	for _, want := range []string{"NAME", "vtrace-host-collect - Collect the per-CPU streams", "SYNOPSIS",
		"vtrace host collect -o OUTDIR [<domain>... | --dir [NAME=]DIR...] [flags]", "-o, --output", "/var/lib/vtrace/<domain>", "SEE ALSO", "vtrace-host(1)"} {
		if !strings.Contains(string(out), want) {
			t.Errorf("man -l vtrace-host-collect.1 lacks %q:\n%s", want, out)
		}
	}
	cmd = exec.Command(man, "-w", "vtrace-host-collect")
	cmd.Env = append(manEnv, "MANPATH="+at("/usr/local/share/man"))
	if out, err := cmd.CombinedOutput(); err != nil || strings.TrimSpace(string(out)) != at("/usr/local/share/man/man1/vtrace-host-collect.1") {
		t.Errorf("MANPATH=... man -w vtrace-host-collect: %v, %q", err, out)
	}

	// bash completes a command and a flag through the installed binary.
	script := `source ` + bashCompletion + `; source "$1"
complete_line() { COMP_LINE="$1"; read -ra COMP_WORDS <<<"$1"; [[ $1 == *" " ]] && COMP_WORDS+=("")
  COMP_CWORD=$((${#COMP_WORDS[@]} - 1)); COMP_POINT=${#COMP_LINE}; COMPREPLY=(); __start_vtrace 2>/dev/null; echo "${COMPREPLY[*]}"; }
complete_line "vtrace host col"; complete_line "vtrace host collect --drain"; complete_line "vtrace guest "`
	cmd = exec.Command("bash", "-c", script, "bash", at("/usr/local/share/bash-completion/completions/vtrace"))
	cmd.Env = append(os.Environ(), "PATH="+at("/usr/local/bin")+":"+os.Getenv("PATH"))
	out, err = cmd.Output()
	if d := cmp.Diff("collect\n--drain-timeout\nagent\n", string(out)); err != nil || d != "" {
		t.Errorf("bash completion: %v (-want +got):\n%s", err, d)
	}
	for path, want := range map[string]string{"/usr/local/share/zsh/site-functions/_vtrace": "#compdef vtrace",
		"/usr/local/share/fish/vendor_completions.d/vtrace.fish": "complete -c vtrace "} {
		if b, _ := os.ReadFile(at(path)); !bytes.Contains(b, []byte(want)) {
			t.Errorf("%s lacks %q", path, want)
		}
	}

	// Both binaries run and say their version.
	for _, bin := range []string{"vtrace", "vtrace-guest"} {
		out, err := exec.Command(at("/usr/local/bin/"+bin), "version").CombinedOutput()
		if err != nil || !strings.HasPrefix(string(out), bin+" ") || !strings.Contains(string(out), "go:") {
			t.Errorf("%s version: %v\n%s", bin, err, out)
		}
	}

	// systemd-analyze verifies the unit as installed, its ExecStart moved
	// into DESTDIR, its Documentation= page found on the MANPATH.
	unit, err := os.ReadFile(at("/usr/local/lib/systemd/system/" + dist.Unit))
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Contains(unit, []byte("ExecStart=/usr/local/bin/vtrace-guest agent\n")) {
		t.Errorf("the unit does not run /usr/local/bin/vtrace-guest agent:\n%s", unit)
	}
	moved := filepath.Join(tmp, dist.Unit)
	if err := os.WriteFile(moved, bytes.ReplaceAll(unit, []byte("=/usr/local/bin/"), []byte("="+at("/usr/local/bin")+"/")), 0o644); err != nil {
		t.Fatal(err)
	}
	cmd = exec.Command(analyze, "verify", moved)
	cmd.Env = append(manEnv, "MANPATH="+at("/usr/local/share/man"))
	if out, err := cmd.CombinedOutput(); err != nil || len(out) > 0 {
		t.Errorf("systemd-analyze verify %s: %v\n%s", dist.Unit, err, out)
	}
	for _, p := range []string{"/etc/init.d/vtrace-agent"} {
		if out, err := exec.Command("sh", "-n", at(p)).CombinedOutput(); err != nil {
			t.Errorf("sh -n %s: %v\n%s", p, err, out)
		}
	}

	// vtrace-guest install writes what make install-guest writes.
	same := func(init, makePath, guestPath string) {
		t.Helper()
		root := filepath.Join(tmp, "root-"+init)
		if out, err := exec.Command(at("/usr/local/bin/vtrace-guest"), "install", "--root", root, "--init", init).CombinedOutput(); err != nil {
			t.Fatalf("vtrace-guest install --init %s: %v\n%s", init, err, out)
		}
		want, _ := os.ReadFile(at(makePath))
		got, err := os.ReadFile(filepath.Join(root, guestPath))
		if d := cmp.Diff(string(want), string(got)); err != nil || d != "" {
			t.Errorf("vtrace-guest install --init %s: %s differs from make's %s: %v (-make +vtrace-guest):\n%s", init, guestPath, makePath, err, d)
		}
	}
	same("systemd", "/usr/local/lib/systemd/system/"+dist.Unit, "/etc/systemd/system/"+dist.Unit)
	same("systemd", "/usr/local/lib/udev/rules.d/"+dist.UdevRule, "/etc/udev/rules.d/"+dist.UdevRule)
	same("sysv", "/etc/init.d/vtrace-agent", "/etc/init.d/vtrace-agent")
	runMake("install-guest", "INITSCRIPT=openrc")
	same("openrc", "/etc/init.d/vtrace-agent", "/etc/init.d/vtrace-agent")

	runMake("uninstall")
	if left := installed(t, dest); len(left) > 0 {
		t.Errorf("make uninstall left %v", keys(left))
	}
}

// installed lists the regular files under root (paths from root) and their
// permissions.
func installed(t *testing.T, root string) map[string]fs.FileMode {
	t.Helper()
	files := map[string]fs.FileMode{}
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		info, err := d.Info()
		if err != nil {
			return err
		}
		files["/"+strings.TrimPrefix(p, root+"/")] = info.Mode().Perm()
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return files
}

func keys(m map[string]fs.FileMode) []string {
	var k []string
	for p := range m {
		k = append(k, p)
	}
	sort.Strings(k)
	return k
}
