package virt

import (
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"

	"github.com/vtrace/vtrace/host/domxml"
	"github.com/vtrace/vtrace/host/fifo"
	"github.com/vtrace/vtrace/internal/testutil"
	"github.com/vtrace/vtrace/proto/channel"
)

var domainSeq atomic.Int32

// connect connects to this test binary's private libvirtd (started on first
// use, stopped by TestMain) through its socket.
func connect(t *testing.T) (*Conn, *testutil.Libvirtd) {
	t.Helper()
	return connectTo(t, testutil.PrivateLibvirtd(t, false))
}

// connectTo connects to the private libvirtd d through its socket.
func connectTo(t *testing.T, d *testutil.Libvirtd) (*Conn, *testutil.Libvirtd) {
	t.Helper()
	testutil.NeedProgram(t, "qemu-system-x86_64", "qemu-system-x86")
	c, err := Connect(d.URI)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c, d
}

// bootFiles returns the Debian kernel and initrd of /boot.
//
// The domains boot copies, made once per test binary in a directory qemu's
// user may pass through and removed by TestMain: libvirt's DAC driver gives
// a domain's kernel and initrd to qemu's user while it runs, which must not
// happen to the machine's /boot.
func bootFiles(t *testing.T) (kernel, initrd string) {
	t.Helper()
	ks, _ := filepath.Glob("/boot/vmlinuz-*")
	is, _ := filepath.Glob("/boot/initrd.img-*")
	testutil.Need(t, len(ks) > 0 && len(is) > 0, "a kernel and initrd in /boot",
		"apt-get install -y --no-install-recommends linux-image-amd64")
	bootOnce.Do(func() {
		bootDir, bootErr = os.MkdirTemp("", "vtrace-virt-boot-")
		if bootErr == nil {
			bootErr = os.Chmod(bootDir, 0o711)
		}
		for _, f := range []string{ks[len(ks)-1], is[len(is)-1]} {
			if bootErr == nil {
				bootErr = copyFile(f, filepath.Join(bootDir, filepath.Base(f)))
			}
		}
	})
	if bootErr != nil {
		t.Fatalf("copy the kernel and initrd: %v", bootErr)
	}
	return filepath.Join(bootDir, filepath.Base(ks[len(ks)-1])), filepath.Join(bootDir, filepath.Base(is[len(is)-1]))
}

var (
	bootOnce sync.Once
	bootDir  string
	bootErr  error
)

// copyFile copies from to a new file to, mode 0644.
func copyFile(from, to string) error {
	b, err := os.ReadFile(from)
	if err != nil {
		return err
	}
	return os.WriteFile(to, b, 0o644)
}

const qemuNS = "http://libvirt.org/schemas/domain/qemu/1.0"

// define defines a small qemu domain named after the test, with the given
// vCPU count and extra devices, and undefines it (destroying it if it runs)
// at the end of the test.
func define(t *testing.T, c *Conn, vcpus int, devices string) string {
	t.Helper()
	kernel, initrd := bootFiles(t)
	name := fmt.Sprintf("vtrace-test-%d-%d", os.Getpid(), domainSeq.Add(1))
	doc := fmt.Sprintf(`<domain type='qemu' xmlns:qemu='%s'>
  <name>%s</name>
  <title>vtrace test domain</title>
  <memory unit='MiB'>128</memory>
  <vcpu placement='static'>%d</vcpu>
  <os>
    <type arch='x86_64' machine='pc'>hvm</type>
    <kernel>%s</kernel>
    <initrd>%s</initrd>
    <cmdline>console=ttyS0 quiet</cmdline>
  </os>
  <devices>
    <serial type='pty'/>
    <console type='pty'/>%s
  </devices>
  <qemu:commandline>
    <qemu:env name='VTRACE_TEST' value='1'/>
  </qemu:commandline>
</domain>`, qemuNS, name, vcpus, kernel, initrd, devices)
	l := c.Libvirt()
	d, err := l.DomainDefineXML(doc)
	if err != nil {
		t.Fatalf("define test domain: %v", err)
	}
	t.Cleanup(func() {
		if a, _ := l.DomainIsActive(d); a != 0 {
			l.DomainDestroy(d)
		}
		if err := l.DomainUndefine(d); err != nil {
			t.Errorf("undefine %s: %v", name, err)
		}
	})
	return name
}

const guestAgent = `
    <channel type='unix'>
      <target type='virtio' name='org.qemu.guest_agent.0'/>
    </channel>`

func inactive(t *testing.T, c *Conn, name string) []byte {
	t.Helper()
	x, err := c.InactiveXML(name)
	if err != nil {
		t.Fatal(err)
	}
	return x
}

func inspect(t *testing.T, doc []byte) domxml.Info {
	t.Helper()
	info, err := domxml.Inspect(doc)
	if err != nil {
		t.Fatal(err)
	}
	return info
}

// outsideDevices returns doc without its <devices> element, for checking
// that nothing else changed.
func outsideDevices(doc []byte) string {
	return regexp.MustCompile(`(?s)<devices>.*</devices>`).ReplaceAllString(string(doc), "")
}

func checkFIFOs(t *testing.T, dir string, names []string) {
	t.Helper()
	for _, n := range names {
		in, out := fifo.Paths(dir, n)
		for _, p := range []string{in, out} {
			st, err := os.Lstat(p)
			if err != nil {
				t.Errorf("FIFO missing: %v", err)
				continue
			}
			if st.Mode() != fs.ModeNamedPipe|fifo.FIFOPerm {
				t.Errorf("%s: mode %v, want %v", p, st.Mode(), fs.ModeNamedPipe|fifo.FIFOPerm)
			}
		}
	}
	got, err := fifo.Names(dir)
	if err != nil || strings.Join(got, " ") != strings.Join(names, " ") {
		t.Errorf("FIFOs in %s for %q, want %q (%v)", dir, got, names, err)
	}
}

func TestIntegrationSetupTeardown(t *testing.T) {
	c, _ := connect(t)
	name := define(t, c, 2, guestAgent)
	dir := filepath.Join(t.TempDir(), name)
	orig := inactive(t, c, name)
	origInfo := inspect(t, orig)
	opts := Options{Domain: name, Dir: dir, Group: -1}

	r, err := Setup(c, opts)
	if err != nil {
		t.Fatal(err)
	}
	if !r.Changed || r.Running || len(r.FIFOs.Created) != 1+2*3 {
		t.Errorf("first setup: %+v", r)
	}
	x := inactive(t, c, name)
	info := inspect(t, x)
	want := channel.Names(2)
	if got := info.ChannelNames(); strings.Join(got, " ") != strings.Join(want, " ") {
		t.Errorf("channels %q, want %q", got, want)
	}
	for _, ch := range info.Channels {
		if ch.Type != "pipe" || ch.Path != filepath.Join(dir, ch.Name) || ch.Port < 1 {
			t.Errorf("channel %+v", ch)
		}
	}
	if info.UUID != origInfo.UUID || info.UUID == "" {
		t.Errorf("UUID %q, was %q", info.UUID, origInfo.UUID)
	}
	if a, b := outsideDevices(orig), outsideDevices(x); a != b {
		t.Errorf("setup changed more than <devices>:\n%s", domxml.Diff("before", "after", []byte(a), []byte(b)))
	}
	if !bytes.Contains(x, []byte("org.qemu.guest_agent.0")) || !bytes.Contains(x, []byte("<qemu:env name='VTRACE_TEST' value='1'/>")) {
		t.Errorf("guest agent channel or qemu:commandline lost:\n%s", x)
	}
	checkFIFOs(t, dir, want)
	if st, err := os.Lstat(dir); err != nil || st.Mode() != fs.ModeDir|fifo.DirPerm {
		t.Errorf("dir %s: %v %v", dir, st.Mode(), err)
	}

	// Idempotent.
	r, err = Setup(c, opts)
	if err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	r.WriteSetup(&out)
	if r.Changed || len(r.FIFOs.Created)+len(r.FIFOs.Removed) != 0 || !strings.Contains(out.String(), "nothing to change") {
		t.Errorf("second setup changed something: %+v\n%s", r, out.String())
	}
	if again := inactive(t, c, name); !bytes.Equal(again, x) {
		t.Errorf("second setup changed the XML:\n%s", domxml.Diff("first", "second", x, again))
	}

	// More vCPUs, then fewer: ports and FIFOs follow.
	for _, cpus := range []int{4, 1} {
		setVCPUs(t, c, name, cpus)
		if _, err := Setup(c, opts); err != nil {
			t.Fatal(err)
		}
		info := inspect(t, inactive(t, c, name))
		want := channel.Names(cpus)
		if got := info.ChannelNames(); strings.Join(got, " ") != strings.Join(want, " ") {
			t.Errorf("%d vCPUs: channels %q, want %q", cpus, got, want)
		}
		checkFIFOs(t, dir, want)
	}
	// --cpus overrides the domain's count.
	if _, err := Setup(c, Options{Domain: name, Dir: dir, Group: -1, CPUs: 3}); err != nil {
		t.Fatal(err)
	}
	if got := inspect(t, inactive(t, c, name)).ChannelNames(); len(got) != 4 {
		t.Errorf("--cpus 3: channels %q", got)
	}

	// Teardown restores the definition (with its vCPU count of 1). Without
	// --dir it finds the FIFOs where the XML's channels say they are.
	setVCPUs(t, c, name, 2)
	r, err = Teardown(c, Options{Domain: name, Group: -1})
	if err != nil {
		t.Fatal(err)
	}
	if !r.Changed {
		t.Errorf("teardown reported no change: %+v", r)
	}
	if after := inactive(t, c, name); !bytes.Equal(after, orig) {
		t.Errorf("teardown did not restore the definition:\n%s", domxml.Diff("original", "after teardown", orig, after))
	}
	if _, err := os.Lstat(dir); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("FIFO directory left: %v", err)
	}
	r, err = Teardown(c, opts)
	if err != nil || r.Changed || len(r.FIFOs.Removed) != 0 {
		t.Errorf("second teardown: %+v, %v", r, err)
	}
}

// setVCPUs redefines domain name with n vCPUs.
func setVCPUs(t *testing.T, c *Conn, name string, n int) {
	t.Helper()
	x := inactive(t, c, name)
	re := regexp.MustCompile(`<vcpu([^>]*)>\d+</vcpu>`)
	y := re.ReplaceAll(x, []byte(fmt.Sprintf("<vcpu${1}>%d</vcpu>", n)))
	if bytes.Equal(x, y) && !bytes.Contains(x, []byte(fmt.Sprintf(">%d</vcpu>", n))) {
		t.Fatalf("no <vcpu> in\n%s", x)
	}
	if err := c.Define(name, y); err != nil {
		t.Fatal(err)
	}
}

func TestIntegrationSetupAddsController(t *testing.T) {
	c, _ := connect(t)
	name := define(t, c, 1, "")
	dir := filepath.Join(t.TempDir(), "fifos")
	orig := inactive(t, c, name)
	if bytes.Contains(orig, []byte("virtio-serial")) {
		t.Fatalf("the test domain already has virtio-serial:\n%s", orig)
	}
	opts := Options{Domain: name, Dir: dir, Group: 0}
	if _, err := Setup(c, opts); err != nil {
		t.Fatal(err)
	}
	x := inactive(t, c, name)
	if !bytes.Contains(x, []byte("<alias name='"+domxml.ControllerAlias+"'/>")) {
		t.Errorf("no virtio-serial controller with our alias:\n%s", x)
	}
	if _, err := Teardown(c, opts); err != nil {
		t.Fatal(err)
	}
	if after := inactive(t, c, name); !bytes.Equal(after, orig) {
		t.Errorf("teardown did not restore the definition:\n%s", domxml.Diff("original", "after teardown", orig, after))
	}
}

func TestIntegrationDryRun(t *testing.T) {
	c, _ := connect(t)
	name := define(t, c, 2, guestAgent)
	dir := filepath.Join(t.TempDir(), name)
	orig := inactive(t, c, name)

	r, err := Setup(c, Options{Domain: name, Dir: dir, Group: -1, DryRun: true})
	if err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	r.WriteSetup(&out)
	for _, s := range []string{"dry run", "+    <channel type='pipe'>", "would create", filepath.Join(dir, "trace-path-cpu1.out")} {
		if !strings.Contains(out.String(), s) {
			t.Errorf("dry-run output lacks %q:\n%s", s, out.String())
		}
	}
	if after := inactive(t, c, name); !bytes.Equal(after, orig) {
		t.Errorf("dry run changed the XML:\n%s", domxml.Diff("before", "after", orig, after))
	}
	if _, err := os.Lstat(dir); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("dry run made %s: %v", dir, err)
	}

	// A dry-run teardown of a set-up domain changes nothing either.
	if _, err := Setup(c, Options{Domain: name, Dir: dir, Group: -1}); err != nil {
		t.Fatal(err)
	}
	set := inactive(t, c, name)
	r, err = Teardown(c, Options{Domain: name, Dir: dir, Group: -1, DryRun: true})
	if err != nil || !r.Changed || len(r.FIFOs.Removed) != 1+2*3 {
		t.Errorf("dry-run teardown: %+v, %v", r, err)
	}
	if after := inactive(t, c, name); !bytes.Equal(after, set) {
		t.Errorf("dry-run teardown changed the XML")
	}
	checkFIFOs(t, dir, channel.Names(2))
}

func TestIntegrationHostileNames(t *testing.T) {
	c, _ := connect(t)
	base := t.TempDir()
	for _, name := range []string{"../x", "a/b", ".", "..", "", "-x", "a\x00b", "a\nb", "/etc"} {
		for _, f := range []func(*Conn, Options) (Result, error){Setup, Teardown} {
			// A nil connection proves the name is refused before any call.
			_, err := f(nil, Options{Domain: name, Group: -1})
			if !errors.Is(err, fifo.ErrBadName) {
				t.Errorf("%q: %v, want ErrBadName", name, err)
			}
			_, err = f(c, Options{Domain: name, Dir: filepath.Join(base, "d"), Group: -1})
			if !errors.Is(err, fifo.ErrBadName) {
				t.Errorf("%q with --dir: %v, want ErrBadName", name, err)
			}
		}
	}
	if ents, _ := os.ReadDir(base); len(ents) != 0 {
		t.Errorf("hostile names made %v", ents)
	}
	if _, err := Setup(c, Options{Domain: "vtrace-no-such-domain", Dir: base, Group: -1}); !errors.Is(err, ErrNoDomain) {
		t.Errorf("setup of a missing domain: %v", err)
	}
}

func TestIntegrationRefusals(t *testing.T) {
	c, _ := connect(t)
	name := define(t, c, 1, guestAgent)
	orig := inactive(t, c, name)
	tmp := t.TempDir()

	check := func(what string, opts Options, wantPath string) {
		t.Helper()
		_, err := Setup(c, opts)
		if err == nil || !strings.Contains(err.Error(), wantPath) {
			t.Errorf("%s: setup error %v, want one naming %s", what, err, wantPath)
		}
		if after := inactive(t, c, name); !bytes.Equal(after, orig) {
			t.Errorf("%s: refused setup changed the XML", what)
		}
	}

	// A symlink in place of the directory.
	elsewhere := filepath.Join(tmp, "elsewhere")
	os.Mkdir(elsewhere, 0o755)
	link := filepath.Join(tmp, "linkdir")
	os.Symlink(elsewhere, link)
	check("symlinked dir", Options{Domain: name, Dir: link, Group: -1}, link)
	if ents, _ := os.ReadDir(elsewhere); len(ents) != 0 {
		t.Errorf("setup made %v through the symlink", ents)
	}

	// A symlink in place of a FIFO.
	dir := filepath.Join(tmp, "d1")
	os.Mkdir(dir, 0o750)
	victim := filepath.Join(tmp, "victim")
	os.WriteFile(victim, []byte("keep"), 0o600)
	fl := filepath.Join(dir, "trace-path-cpu0.in")
	os.Symlink(victim, fl)
	check("symlinked FIFO", Options{Domain: name, Dir: dir, Group: 0}, fl)
	if st, _ := os.Lstat(fl); st.Mode()&fs.ModeSymlink == 0 {
		t.Error("the symlink was replaced")
	}
	if st, _ := os.Stat(victim); st.Mode() != 0o600 {
		t.Errorf("the symlink's target changed mode: %v", st.Mode())
	}

	// A regular file in place of a FIFO.
	dir = filepath.Join(tmp, "d2")
	os.Mkdir(dir, 0o750)
	reg := filepath.Join(dir, "agent-ctl-path.out")
	os.WriteFile(reg, []byte("data"), 0o644)
	check("regular file", Options{Domain: name, Dir: dir, Group: -1}, reg)
	if b, _ := os.ReadFile(reg); string(b) != "data" {
		t.Errorf("the regular file changed: %q", b)
	}
	_, err := Teardown(c, Options{Domain: name, Dir: dir, Group: -1})
	if err == nil || !strings.Contains(err.Error(), reg) {
		t.Errorf("teardown with a regular file: %v", err)
	}
	if b, _ := os.ReadFile(reg); string(b) != "data" {
		t.Errorf("teardown changed the regular file: %q", b)
	}
}

// owners returns "UID:GID" of every FIFO of names in dir.
func owners(t *testing.T, dir string, names []string) []string {
	t.Helper()
	var o []string
	for _, n := range names {
		in, out := fifo.Paths(dir, n)
		for _, p := range []string{in, out} {
			st, err := os.Lstat(p)
			if err != nil {
				t.Fatal(err)
			}
			s := st.Sys().(*syscall.Stat_t)
			o = append(o, fmt.Sprintf("%d:%d", s.Uid, s.Gid))
		}
	}
	return o
}

// TestIntegrationRunningDomain sets up a running domain, checks the next-boot
// advice, then restarts it and checks that qemu, running as libvirt's
// default unprivileged user, got the channels: libvirt gave it the FIFOs
// while it ran and gave them back when it stopped.
func TestIntegrationRunningDomain(t *testing.T) {
	c, d := connect(t)
	name := define(t, c, 2, "")
	dir := filepath.Join(testutil.ReachableDir(t), name)
	l := c.Libvirt()
	dom, err := l.DomainLookupByName(name)
	if err != nil {
		t.Fatal(err)
	}
	if err := l.DomainCreate(dom); err != nil {
		t.Fatalf("start the test domain: %v", err)
	}
	const group = 54321
	r, err := Setup(c, Options{Domain: name, Dir: dir, Group: group})
	if err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	r.WriteSetup(&out)
	if !r.Running || !strings.Contains(out.String(), "next boot") || !strings.Contains(out.String(), "virsh -c "+d.URI+" shutdown "+name) {
		t.Errorf("running domain: %+v\n%s", r, out.String())
	}
	if len(r.Warnings) != 0 {
		t.Errorf("setup in a directory qemu can reach warns: %q", r.Warnings)
	}
	live, err := l.DomainGetXMLDesc(dom, 0)
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(live, "trace-path-cpu0") {
		t.Error("the running domain got the channels without a restart")
	}

	names := channel.Names(2)
	set := owners(t, dir, names)
	for _, o := range set {
		if o != fmt.Sprintf("0:%d", group) {
			t.Fatalf("FIFO owners after setup %q, want 0:%d", set, group)
		}
	}
	a, err := c.access(inactive(t, c, name))
	if err != nil || !a.dac || a.uid == 0 || !a.relabel {
		t.Fatalf("the private libvirtd does not run qemu as an unprivileged user with DAC relabelling: %+v, %v", a, err)
	}
	for round := 1; round <= 2; round++ {
		if err := l.DomainDestroy(dom); err != nil {
			t.Fatal(err)
		}
		if got := owners(t, dir, names); !slices.Equal(got, set) {
			t.Errorf("round %d: FIFO owners after the domain stopped %q, want them restored to %q", round, got, set)
		}
		if err := l.DomainCreate(dom); err != nil {
			t.Fatalf("round %d: start the set-up domain (qemu refused the channels?): %v", round, err)
		}
		live, err = l.DomainGetXMLDesc(dom, 0)
		if err != nil {
			t.Fatal(err)
		}
		for _, n := range names {
			if !strings.Contains(live, "name='"+n+"'") {
				t.Errorf("round %d: the restarted domain lacks channel %s", round, n)
			}
		}
		want := fmt.Sprintf("%d:%d", a.uid, a.groups[0])
		for _, o := range owners(t, dir, names) {
			if o != want {
				t.Errorf("round %d: FIFO owner %s while the domain runs, want qemu's %s", round, o, want)
			}
		}
	}
	// Teardown while it runs: the definition loses the channels.
	r, err = Teardown(c, Options{Domain: name, Dir: dir, Group: -1})
	if err != nil || !r.Running {
		t.Errorf("teardown of a running domain: %+v, %v", r, err)
	}
	if len(inspect(t, inactive(t, c, name)).Channels) != 0 {
		t.Error("channels left in the definition")
	}
	l.DomainDestroy(dom)
}

// TestIntegrationSetupWarnsUnreachable: a --dir under a directory that
// qemu's user cannot pass is set up, with a warning naming that directory,
// and the domain indeed fails to start on it.
func TestIntegrationSetupWarnsUnreachable(t *testing.T) {
	c, _ := connect(t)
	name := define(t, c, 1, "")
	closed := t.TempDir()
	if err := os.Chmod(closed, 0o700); err != nil {
		t.Fatal(err)
	}
	dir := filepath.Join(closed, name)
	r, err := Setup(c, Options{Domain: name, Dir: dir, Group: -1})
	if err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	r.WriteSetup(&out)
	if !strings.Contains(out.String(), "warning: qemu runs as uid") || !strings.Contains(out.String(), "cannot pass through "+closed+" (mode 0700") {
		t.Errorf("setup under a 0700 directory:\n%s", out.String())
	}
	l := c.Libvirt()
	dom, err := l.DomainLookupByName(name)
	if err != nil {
		t.Fatal(err)
	}
	err = l.DomainCreate(dom)
	if err == nil {
		t.Error("the domain started though qemu cannot reach its FIFOs")
	} else if !strings.Contains(err.Error(), "Permission denied") {
		t.Errorf("start: %v, want qemu's Permission denied", err)
	}
	if _, err := Teardown(c, Options{Domain: name, Group: -1}); err != nil {
		t.Fatal(err)
	}
}
