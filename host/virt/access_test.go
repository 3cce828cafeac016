package virt

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// Capabilities as libvirt 9.0 reports them with AppArmor and Debian's
// default qemu.conf (only the parts read).
const capsAppArmor = `<capabilities>
  <host>
    <uuid>0</uuid>
    <secmodel>
      <model>apparmor</model>
      <doi>0</doi>
    </secmodel>
    <secmodel>
      <model>dac</model>
      <doi>0</doi>
      <baselabel type='kvm'>+64055:+994</baselabel>
      <baselabel type='qemu'>+64055:+64055</baselabel>
    </secmodel>
  </host>
</capabilities>`

func TestParseAccess(t *testing.T) {
	for _, c := range []struct {
		name, caps, dom string
		dac, relabel    bool
		uid, gid        int
		models          string
	}{
		{"qemu domain", capsAppArmor, `<domain type='qemu'><name>a</name></domain>`, true, true, 64055, 64055, "apparmor dac"},
		{"kvm domain", capsAppArmor, `<domain type='kvm'><name>a</name></domain>`, true, true, 64055, 994, "apparmor dac"},
		{"static label", capsAppArmor, `<domain type='kvm'><seclabel type='static' model='dac' relabel='yes'><label>+1000:+1001</label></seclabel></domain>`,
			true, true, 1000, 1001, "apparmor dac"},
		{"no relabel", capsAppArmor, `<domain type='qemu'><seclabel type='dynamic' model='dac' relabel='no'/></domain>`, true, false, 64055, 64055, "apparmor dac"},
		{"seclabel none", capsAppArmor, `<domain type='qemu'><seclabel type='none'/></domain>`, true, false, 64055, 64055, "apparmor dac"},
		{"names", capsAppArmor, `<domain type='qemu'><seclabel type='static' model='dac'><label>root:root</label></seclabel></domain>`, true, true, 0, 0, "apparmor dac"},
		{"no dac", `<capabilities><host><secmodel><model>none</model></secmodel></host></capabilities>`, `<domain type='qemu'/>`, false, false, 0, 0, "none"},
	} {
		a, err := parseAccess([]byte(c.caps), []byte(c.dom))
		if err != nil {
			t.Errorf("%s: %v", c.name, err)
			continue
		}
		if a.dac != c.dac || a.relabel != c.relabel || strings.Join(a.models, " ") != c.models ||
			(c.dac && (a.uid != c.uid || a.groups[0] != c.gid)) {
			t.Errorf("%s: %+v, want dac %v relabel %v uid %d gid %d models %q", c.name, a, c.dac, c.relabel, c.uid, c.gid, c.models)
		}
	}
	if _, err := parseAccess([]byte("<capabilities"), []byte("<domain/>")); err == nil {
		t.Error("broken capabilities XML accepted")
	}
}

func TestAppArmorWarning(t *testing.T) {
	for dir, refused := range map[string]bool{
		"/var/lib/vtrace/vm1": false, "/srv/trace": false, "/tmp/x": false, "/var/lib/libvirt/qemu/channel": false,
		"/etc/vtrace/vm1": true, "/usr/share/vtrace": true, "/usr/local/libexec": true, "/lib64/x": true,
		"/boot/x": true, "/initrd-fifos": true, "/sys/x": true, "/proc/1": true, `/srv/a"b`: true,
	} {
		if w := apparmorWarning(dir); (w != "") != refused {
			t.Errorf("apparmorWarning(%q) = %q, want refused %v", dir, w, refused)
		}
	}
	// A symlink into a refused tree counts where it leads.
	link := filepath.Join(t.TempDir(), "link")
	if err := os.Symlink("/etc", link); err != nil {
		t.Fatal(err)
	}
	if w := apparmorWarning(filepath.Join(link, "vm1")); !strings.Contains(w, "/etc/") {
		t.Errorf("a --dir through a symlink to /etc: %q", w)
	}
}

func TestAccessWarnings(t *testing.T) {
	base, err := os.MkdirTemp("", "vtrace-access-test-") // in /tmp, which all pass
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(base) })
	if err := os.Chmod(base, 0o700); err != nil {
		t.Fatal(err)
	}
	dir := filepath.Join(base, "sub", "vm1")
	qemu := qemuAccess{models: []string{"dac"}, dac: true, uid: 64055, groups: []int{64055}, relabel: true}
	w := accessWarnings(dir, -1, qemu)
	if len(w) != 1 || !strings.Contains(w[0], "cannot pass through "+base+" (mode 0700") {
		t.Errorf("warnings for a directory under %s (0700): %q", base, w)
	}
	if err := os.Chmod(base, 0o711); err != nil {
		t.Fatal(err)
	}
	if w := accessWarnings(dir, -1, qemu); len(w) != 0 {
		t.Errorf("warnings once %s is 0711: %q", base, w)
	}
	// Through the group instead.
	os.Chmod(base, 0o710)
	if w := accessWarnings(dir, -1, qemuAccess{dac: true, uid: 64055, groups: []int{64055, 0}, relabel: true}); len(w) != 0 {
		t.Errorf("qemu in %s's group (0) is warned: %q", base, w)
	}
	// qemu as root, or no DAC label known: nothing to check.
	os.Chmod(base, 0o700)
	if w := accessWarnings(dir, -1, qemuAccess{dac: true, uid: 0, groups: []int{0}, relabel: true}); len(w) != 0 {
		t.Errorf("qemu as root is warned: %q", w)
	}
	if w := accessWarnings(dir, -1, qemuAccess{}); len(w) != 0 {
		t.Errorf("no DAC label, yet warnings: %q", w)
	}
	// AppArmor.
	aa := qemuAccess{models: []string{"apparmor", "dac"}}
	if w := accessWarnings("/etc/vtrace", -1, aa); len(w) != 1 || !strings.Contains(w[0], "AppArmor") {
		t.Errorf("AppArmor and /etc/vtrace: %q", w)
	}
	// No relabelling, and qemu not in the FIFOs' group.
	os.Chmod(base, 0o711)
	norelabel := qemuAccess{dac: true, uid: 64055, groups: []int{64055}}
	if w := accessWarnings(dir, 54321, norelabel); len(w) != 1 || !strings.Contains(w[0], "--group") {
		t.Errorf("no relabel, group 54321: %q", w)
	}
	if w := accessWarnings(dir, 64055, norelabel); !slices.Equal(w, nil) {
		t.Errorf("no relabel, qemu's group: %q", w)
	}
}
