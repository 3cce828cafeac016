package e2e

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"testing"

	"github.com/vtrace/vtrace/internal/testutil"
)

// TestIntegrationLibvirt runs scripts/demo-libvirt.sh: a libvirt domain of
// type qemu booting the test guest, `vtrace host setup`, a start through
// libvirt, `vtrace host collect --start DOMAIN`, then destroy, teardown and
// undefine. Every CPU's stream must parse and hold events, and the domain
// must be gone at the end.
func TestIntegrationLibvirt(t *testing.T) {
	logDuration(t)
	testutil.NeedRoot(t)
	testutil.NeedProgram(t, "libvirtd", "libvirt-daemon-system")
	testutil.NeedProgram(t, "virsh", "libvirt-clients")
	testutil.NeedProgram(t, "qemu-system-x86_64", "qemu-system-x86")
	repo := testutil.Repo(t)
	name := fmt.Sprintf("vtrace-e2e-%d", os.Getpid())
	out := filepath.Join(t.TempDir(), "capture")

	cmd := exec.Command("bash", filepath.Join(repo, "scripts", "demo-libvirt.sh"), "-n", name, "-o", out, "-d", "4")
	cmd.Env = append(os.Environ(), "VTRACE_BIN="+testutil.BuildVtrace(t))
	output, err := cmd.CombinedOutput()
	t.Logf("scripts/demo-libvirt.sh:\n%s", output)
	if err != nil {
		t.Fatalf("scripts/demo-libvirt.sh: %v", err)
	}
	for cpu := 0; cpu < 2; cpu++ {
		c := scanRaw(t, filepath.Join(out, fmt.Sprintf("cpu%d.raw", cpu)))
		if c.Events == 0 || c.Partial != 0 {
			t.Errorf("cpu %d: %d events in %d pages, %d bytes of a partial page; want events in whole pages", cpu, c.Events, c.Pages, c.Partial)
		}
	}
	if out, err := exec.Command("virsh", "-c", "qemu:///system", "dominfo", name).CombinedOutput(); err == nil {
		t.Errorf("domain %s still defined after the script:\n%s", name, out)
	}
	if _, err := os.Stat(filepath.Join("/var/lib/vtrace", name)); !os.IsNotExist(err) {
		t.Errorf("FIFO directory /var/lib/vtrace/%s left behind (%v)", name, err)
	}
}
