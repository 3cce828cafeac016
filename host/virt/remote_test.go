package virt

import (
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"github.com/vtrace/vtrace/host/domxml"
	"github.com/vtrace/vtrace/host/fifo"
	"github.com/vtrace/vtrace/internal/testutil"
	"github.com/vtrace/vtrace/proto/channel"
)

// The remote transports are tested against this machine's own libvirtd,
// reached over TCP (libvirtd --listen) and over a private sshd, while the
// results are checked through the local socket.

// freePort returns a TCP port of 127.0.0.1 that nothing listens on now.
func freePort(t *testing.T) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

const libvirtdConf = "/etc/libvirt/libvirtd.conf"

// tcpBlock matches what scripts/libvirtd.sh --tcp adds to libvirtd.conf.
var tcpBlock = regexp.MustCompile(`(?ms)^# vtrace scripts/libvirtd.sh --tcp: begin$.*?^# vtrace scripts/libvirtd.sh --tcp: end\n`)

// listenTCP makes libvirtd listen on a free port of 127.0.0.1 (scripts/libvirtd.sh
// --tcp, which restarts it) and returns its qemu+tcp URI. At the end of the
// test it restores libvirtd.conf and restarts libvirtd without --listen
// (--no-tcp), and checks both. Call it before connect: the restart ends
// every connection already open.
func listenTCP(t *testing.T) string {
	t.Helper()
	testutil.NeedRoot(t)
	testutil.NeedProgram(t, "libvirtd", "libvirt-daemon-system")
	testutil.NeedProgram(t, "virsh", "libvirt-clients")
	script := filepath.Join(testutil.Repo(t), "scripts/libvirtd.sh")
	before, err := os.ReadFile(libvirtdConf)
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		t.Fatal(err)
	}
	port := freePort(t)
	uri := fmt.Sprintf("qemu+tcp://127.0.0.1:%d/system", port)
	t.Cleanup(func() {
		if out, err := exec.Command("bash", script, "--no-tcp").CombinedOutput(); err != nil {
			t.Errorf("libvirtd.sh --no-tcp: %v\n%s", err, out)
		}
		after, err := os.ReadFile(libvirtdConf)
		if err != nil && !errors.Is(err, fs.ErrNotExist) {
			t.Error(err)
		}
		// A block left by a killed run is gone too.
		if want := tcpBlock.ReplaceAll(before, nil); !bytes.Equal(after, want) {
			t.Errorf("libvirtd.conf not restored:\n%s", domxml.Diff("before", "after", want, after))
		}
		if c, err := Connect(uri); err == nil {
			c.Close()
			t.Errorf("libvirtd still listens on %s after --no-tcp", uri)
		}
	})
	if out, err := exec.Command("bash", script, "--tcp", strconv.Itoa(port)).CombinedOutput(); err != nil {
		t.Fatalf("libvirtd.sh --tcp %d: %v\n%s", port, err, out)
	}
	return uri
}

// sshd starts a private sshd on a free port of 127.0.0.1 (scripts/sshd-test.sh)
// and stops it at the end of the test. It returns the port and the
// directory holding the client key id_ed25519 and known_hosts.
func sshd(t *testing.T) (port int, dir string) {
	t.Helper()
	testutil.NeedRoot(t)
	testutil.NeedProgram(t, "sshd", "openssh-server")
	testutil.NeedProgram(t, "ssh-keygen", "openssh-client")
	script := filepath.Join(testutil.Repo(t), "scripts/sshd-test.sh")
	dir, port = t.TempDir(), freePort(t)
	t.Cleanup(func() {
		if out, err := exec.Command("bash", script, "stop", dir).CombinedOutput(); err != nil {
			t.Errorf("sshd-test.sh stop: %v\n%s", err, out)
		}
	})
	if out, err := exec.Command("bash", script, "start", dir, strconv.Itoa(port)).CombinedOutput(); err != nil {
		t.Fatalf("sshd-test.sh start: %v\n%s", err, out)
	}
	return port, dir
}

// wantOut fails the test unless a vtrace run exited with code and printed
// every string of want.
func wantOut(t *testing.T, what, out string, code, wantCode int, want ...string) {
	t.Helper()
	ok := code == wantCode
	for _, s := range want {
		ok = ok && strings.Contains(out, s)
	}
	if !ok {
		t.Errorf("%s: exit %d (want %d), output lacks one of %q:\n%s", what, code, wantCode, want, out)
	}
}

func noDir(t *testing.T, dir string) {
	t.Helper()
	if _, err := os.Lstat(dir); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("%s exists (%v), want nothing made on this machine", dir, err)
	}
}

func TestIntegrationRemoteTCP(t *testing.T) {
	uri := listenTCP(t)
	c := connect(t)
	name := define(t, c, 2, guestAgent)
	dir := filepath.Join(t.TempDir(), name)
	orig := inactive(t, c, name)

	rc, err := Connect(uri)
	if err != nil {
		t.Fatal(err)
	}
	x, err := rc.InactiveXML(name)
	rc.Close()
	if err != nil || !bytes.Equal(x, orig) {
		t.Errorf("XML over %s differs from the local socket's (%v)", uri, err)
	}
	if rc.Remote() != "127.0.0.1" || c.Remote() != "" {
		t.Errorf("Remote() = %q over TCP, %q locally", rc.Remote(), c.Remote())
	}

	out, code := vtrace(t, nil, "host", "setup", "-c", uri, "--dry-run", "--dir", dir, name)
	wantOut(t, "setup --dry-run", out, code, 0, "would be redefined", "the domain runs on 127.0.0.1",
		filepath.Join(dir, "trace-path-cpu1.out"))
	if !bytes.Equal(inactive(t, c, name), orig) {
		t.Error("setup --dry-run changed the XML")
	}

	// A remote setup changes the XML only, and says which FIFOs the host needs.
	out, code = vtrace(t, nil, "host", "setup", "-c", uri, "--dir", dir, name)
	wantOut(t, "remote setup", out, code, 0, "redefined ("+uri+")",
		"FIFOs: none made on this machine: the domain runs on 127.0.0.1",
		"On 127.0.0.1, run: vtrace host setup --dir "+dir+" "+name,
		"  "+filepath.Join(dir, "agent-ctl-path.in")+"\n", "--local-fifos")
	set := inactive(t, c, name)
	if got := inspect(t, set).ChannelNames(); strings.Join(got, " ") != strings.Join(channel.Names(2), " ") {
		t.Errorf("channels after remote setup: %q", got)
	}
	if in, _ := fifo.Paths(dir, "trace-path-cpu1"); !bytes.Contains(set, []byte("<source path='"+strings.TrimSuffix(in, ".in")+"'/>")) {
		t.Errorf("XML after remote setup lacks the sources in %s:\n%s", dir, set)
	}
	noDir(t, dir)

	// --local-fifos: the remote daemon is this machine's.
	out, code = vtrace(t, nil, "host", "setup", "-c", uri, "--local-fifos", "--dir", dir, name)
	wantOut(t, "setup --local-fifos", out, code, 0, "XML already as wanted", "created:")
	checkFIFOs(t, dir, channel.Names(2))
	if !bytes.Equal(inactive(t, c, name), set) {
		t.Error("second setup changed the XML")
	}

	out, code = vtrace(t, nil, "host", "teardown", "-c", uri, "--dir", dir, name)
	wantOut(t, "remote teardown", out, code, 0, "redefined", "FIFOs: none removed on this machine",
		"On 127.0.0.1, run: vtrace host teardown --dir "+dir+" "+name)
	if after := inactive(t, c, name); !bytes.Equal(after, orig) {
		t.Errorf("remote teardown did not restore the definition:\n%s", domxml.Diff("original", "after", orig, after))
	}
	checkFIFOs(t, dir, channel.Names(2))

	out, code = vtrace(t, nil, "host", "teardown", "-c", uri, "--local-fifos", "--dir", dir, name)
	wantOut(t, "teardown --local-fifos", out, code, 0, "XML already as wanted", "removed:")
	noDir(t, dir)
}

func TestIntegrationRemoteSSH(t *testing.T) {
	port, keys := sshd(t)
	c := connect(t)
	name := define(t, c, 1, "")
	dir := filepath.Join(t.TempDir(), name)
	orig := inactive(t, c, name)
	// No agent: the key comes from ?keyfile= only.
	env := []string{"SSH_AUTH_SOCK="}
	key := filepath.Join(keys, "id_ed25519")
	known := filepath.Join(keys, "known_hosts")
	host := fmt.Sprintf("root@127.0.0.1:%d", port)

	// qemu+libssh checks the host key against ?known_hosts=.
	libssh := fmt.Sprintf("qemu+libssh://%s/system?keyfile=%s&known_hosts=%s", host, key, known)
	out, code := vtrace(t, env, "host", "setup", "-c", libssh, "--local-fifos", "--dir", dir, name)
	wantOut(t, "setup over qemu+libssh", out, code, 0, "redefined", "created:",
		"channels: agent-ctl-path trace-path-cpu0\n")
	checkFIFOs(t, dir, channel.Names(1))
	if got := inspect(t, inactive(t, c, name)).ChannelNames(); strings.Join(got, " ") != "agent-ctl-path trace-path-cpu0" {
		t.Errorf("channels after setup over ssh: %q", got)
	}

	// qemu+ssh reads only ~/.ssh/known_hosts (as libvirt's ssh transport
	// does): ?no_verify=1 here, and ?known_hosts= is refused.
	ssh := fmt.Sprintf("qemu+ssh://%s/system?keyfile=%s&no_verify=1", host, key)
	out, code = vtrace(t, env, "host", "teardown", "-c", ssh, "--local-fifos", "--dir", dir, name)
	wantOut(t, "teardown over qemu+ssh", out, code, 0, "redefined", "removed:")
	if after := inactive(t, c, name); !bytes.Equal(after, orig) {
		t.Errorf("teardown over ssh did not restore the definition:\n%s", domxml.Diff("original", "after", orig, after))
	}
	noDir(t, dir)
	bad := fmt.Sprintf("qemu+ssh://%s/system?keyfile=%s&known_hosts=%s", host, key, known)
	out, code = vtrace(t, env, "host", "setup", "-c", bad, "--dry-run", name)
	wantOut(t, "qemu+ssh with known_hosts", out, code, 1, "known_hosts option invalid with ssh transport")

	// A host key other than the one known is refused before any change.
	wrong := filepath.Join(t.TempDir(), "known_hosts")
	pub, err := os.ReadFile(key + ".pub")
	if err != nil {
		t.Fatal(err)
	}
	line := fmt.Sprintf("[127.0.0.1]:%d %s\n", port, strings.Join(strings.Fields(string(pub))[:2], " "))
	if err := os.WriteFile(wrong, []byte(line), 0o600); err != nil {
		t.Fatal(err)
	}
	spoofed := fmt.Sprintf("qemu+libssh://%s/system?keyfile=%s&known_hosts=%s", host, key, wrong)
	out, code = vtrace(t, env, "host", "setup", "-c", spoofed, "--local-fifos", "--dir", dir, name)
	wantOut(t, "setup with a wrong host key", out, code, 1, "connect to libvirt", "key mismatch")
	if !bytes.Equal(inactive(t, c, name), orig) {
		t.Error("setup with a wrong host key changed the XML")
	}
	noDir(t, dir)
}
