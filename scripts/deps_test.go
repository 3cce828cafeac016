// Package scripts holds the shell scripts of the build, the demo and the
// tests; its test checks what they promise.
package scripts

import (
	"os/exec"
	"slices"
	"strings"
	"testing"
)

func depsList(t *testing.T, args ...string) []string {
	t.Helper()
	out, err := exec.Command("bash", append([]string{"deps.sh"}, append(args, "--list")...)...).Output()
	if err != nil {
		t.Fatalf("deps.sh %v --list: %v", args, err)
	}
	return strings.Fields(string(out))
}

// TestDepsSets: the demo's set holds what the demo runs and none of what
// only the tests need (a server, a kernel source, a compiler, libvirt);
// the tests' set holds the demo's and those; `make demo` asks for the
// demo's set, `make test` for the tests'.
func TestDepsSets(t *testing.T) {
	demo, test := depsList(t, "demo"), depsList(t, "test")
	for _, p := range []string{"qemu-system-x86", "linux-image-amd64", "busybox-static", "cpio", "kmod"} {
		if !slices.Contains(demo, p) {
			t.Errorf("the demo's set lacks %s: %v", p, demo)
		}
	}
	for _, p := range []string{"openssh-server", "linux-source-6.1", "gcc", "libc6-dev", "libvirt-daemon-system"} {
		if slices.Contains(demo, p) {
			t.Errorf("the demo's set installs %s, which only the tests need", p)
		}
		if !slices.Contains(test, p) {
			t.Errorf("the tests' set lacks %s: %v", p, test)
		}
	}
	for _, p := range demo {
		if !slices.Contains(test, p) {
			t.Errorf("the tests' set lacks the demo's %s", p)
		}
	}
	if def := depsList(t); !slices.Equal(def, test) {
		t.Errorf("deps.sh with no set installs %v, want the tests' %v", def, test)
	}
	if err := exec.Command("bash", "deps.sh", "nosuch", "--list").Run(); err == nil {
		t.Error("deps.sh accepts an unknown set")
	}
	for target, want := range map[string]string{"demo": "scripts/deps.sh demo", "test": "scripts/deps.sh test"} {
		out, err := exec.Command("make", "-n", "-C", "..", target).Output()
		if err != nil {
			t.Fatalf("make -n %s: %v", target, err)
		}
		if !strings.Contains(string(out), want) {
			t.Errorf("make -n %s does not run %q:\n%s", target, want, out)
		}
	}
}
