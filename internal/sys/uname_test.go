package sys

import (
	"os"
	"strings"
	"testing"
)

// TestUnameRelease: the release is the kernel's own (as in
// /proc/sys/kernel/osrelease), without the NUL padding of struct utsname,
// and it is the third field of Uname.
func TestUnameRelease(t *testing.T) {
	rel, err := Release()
	if err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile("/proc/sys/kernel/osrelease")
	if err != nil {
		t.Fatal(err)
	}
	if want := strings.TrimSpace(string(b)); rel != want {
		t.Errorf("Release() = %q, want %q", rel, want)
	}
	u, err := Uname()
	if err != nil {
		t.Fatal(err)
	}
	if f := strings.Fields(u); len(f) < 5 || f[0] != "Linux" || f[2] != rel || strings.ContainsRune(u, 0) {
		t.Errorf("Uname() = %q, want Linux NODENAME %s VERSION MACHINE without NULs", u, rel)
	}
}
