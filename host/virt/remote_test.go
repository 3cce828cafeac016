package virt

import (
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/vtrace/vtrace/host/domxml"
	"github.com/vtrace/vtrace/host/fifo"
	"github.com/vtrace/vtrace/internal/testutil"
	"github.com/vtrace/vtrace/proto/channel"
)

// The remote transports are tested against private libvirtds reached from
// inside their own network namespaces (a TCP listener without
// authentication there, a private sshd there), while the results are
// checked through their sockets. Nothing listens on the machine's loopback.

// sshd starts a private sshd on port 2222 of the network namespace of the
// private libvirtd d, and in its mount namespace (so that go-libvirt's
// default socket path reaches d), with scripts/sshd-test.sh, and stops it at
// the end of the test. It returns the port and the directory holding the
// client key id_ed25519 and known_hosts.
func sshd(t *testing.T, d *testutil.Libvirtd) (port int, dir string) {
	t.Helper()
	testutil.NeedProgram(t, "sshd", "openssh-server")
	testutil.NeedProgram(t, "ssh-keygen", "openssh-client")
	script := filepath.Join(testutil.Repo(t), "scripts/sshd-test.sh")
	dir, port = t.TempDir(), 2222
	t.Cleanup(func() {
		if out, err := exec.Command("bash", script, "stop", dir).CombinedOutput(); err != nil {
			t.Errorf("sshd-test.sh stop: %v\n%s", err, out)
		}
	})
	if out, err := exec.Command("bash", script, "start", dir, strconv.Itoa(port), strconv.Itoa(d.PID)).CombinedOutput(); err != nil {
		t.Fatalf("sshd-test.sh start: %v\n%s", err, out)
	}
	return port, dir
}

// unreachable fails the test when uri, dialled from the test's own network
// namespace (the machine's), reaches a daemon that knows domain name.
func unreachable(t *testing.T, uri, name string) {
	t.Helper()
	c, err := Connect(uri)
	if err != nil {
		return
	}
	defer c.Close()
	if _, err := c.InactiveXML(name); !errors.Is(err, ErrNoDomain) {
		t.Errorf("%s reaches the private libvirtd from outside its network namespace (%v)", uri, err)
	}
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
	c, d := connectTo(t, testutil.PrivateLibvirtd(t, true))
	name := define(t, c, 2, guestAgent)
	dir := filepath.Join(t.TempDir(), name)
	orig := inactive(t, c, name)
	uri := testutil.TCPURI

	var x []byte
	var rc *Conn
	err := d.InNetNS(func() error {
		var err error
		if rc, err = Connect(uri); err != nil {
			return err
		}
		x, err = rc.InactiveXML(name)
		rc.Close()
		return err
	})
	if err != nil || !bytes.Equal(x, orig) {
		t.Errorf("XML over %s differs from the socket's (%v)", uri, err)
	}
	if err == nil && (rc.Remote() != "127.0.0.1" || c.Remote() != "") {
		t.Errorf("Remote() = %q over TCP, %q locally", rc.Remote(), c.Remote())
	}
	unreachable(t, uri, name)

	out, code := vtraceIn(t, d, nil, "host", "setup", "-c", uri, "--dry-run", "--dir", dir, name)
	wantOut(t, "setup --dry-run", out, code, 0, "would be redefined", "the domain runs on 127.0.0.1",
		filepath.Join(dir, "trace-path-cpu1.out"))
	if !bytes.Equal(inactive(t, c, name), orig) {
		t.Error("setup --dry-run changed the XML")
	}

	// A remote setup changes the XML only, and says which FIFOs the host needs.
	out, code = vtraceIn(t, d, nil, "host", "setup", "-c", uri, "--dir", dir, name)
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
	out, code = vtraceIn(t, d, nil, "host", "setup", "-c", uri, "--local-fifos", "--dir", dir, name)
	wantOut(t, "setup --local-fifos", out, code, 0, "XML already as wanted", "created:")
	checkFIFOs(t, dir, channel.Names(2))
	if !bytes.Equal(inactive(t, c, name), set) {
		t.Error("second setup changed the XML")
	}

	out, code = vtraceIn(t, d, nil, "host", "teardown", "-c", uri, "--dir", dir, name)
	wantOut(t, "remote teardown", out, code, 0, "redefined", "FIFOs: none removed on this machine",
		"On 127.0.0.1, run: vtrace host teardown --dir "+dir+" "+name)
	if after := inactive(t, c, name); !bytes.Equal(after, orig) {
		t.Errorf("remote teardown did not restore the definition:\n%s", domxml.Diff("original", "after", orig, after))
	}
	checkFIFOs(t, dir, channel.Names(2))

	out, code = vtraceIn(t, d, nil, "host", "teardown", "-c", uri, "--local-fifos", "--dir", dir, name)
	wantOut(t, "teardown --local-fifos", out, code, 0, "XML already as wanted", "removed:")
	noDir(t, dir)
}

func TestIntegrationRemoteSSH(t *testing.T) {
	c, d := connect(t)
	port, keys := sshd(t, d)
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
	unreachable(t, libssh, name)
	out, code := vtraceIn(t, d, env, "host", "setup", "-c", libssh, "--local-fifos", "--dir", dir, name)
	wantOut(t, "setup over qemu+libssh", out, code, 0, "redefined", "created:",
		"channels: agent-ctl-path trace-path-cpu0\n")
	checkFIFOs(t, dir, channel.Names(1))
	if got := inspect(t, inactive(t, c, name)).ChannelNames(); strings.Join(got, " ") != "agent-ctl-path trace-path-cpu0" {
		t.Errorf("channels after setup over ssh: %q", got)
	}

	// qemu+ssh reads only ~/.ssh/known_hosts (as libvirt's ssh transport
	// does): ?no_verify=1 here, and ?known_hosts= is refused.
	ssh := fmt.Sprintf("qemu+ssh://%s/system?keyfile=%s&no_verify=1", host, key)
	out, code = vtraceIn(t, d, env, "host", "teardown", "-c", ssh, "--local-fifos", "--dir", dir, name)
	wantOut(t, "teardown over qemu+ssh", out, code, 0, "redefined", "removed:")
	if after := inactive(t, c, name); !bytes.Equal(after, orig) {
		t.Errorf("teardown over ssh did not restore the definition:\n%s", domxml.Diff("original", "after", orig, after))
	}
	noDir(t, dir)
	bad := fmt.Sprintf("qemu+ssh://%s/system?keyfile=%s&known_hosts=%s", host, key, known)
	out, code = vtraceIn(t, d, env, "host", "setup", "-c", bad, "--dry-run", name)
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
	out, code = vtraceIn(t, d, env, "host", "setup", "-c", spoofed, "--local-fifos", "--dir", dir, name)
	wantOut(t, "setup with a wrong host key", out, code, 1, "connect to libvirt", "key mismatch")
	if !bytes.Equal(inactive(t, c, name), orig) {
		t.Error("setup with a wrong host key changed the XML")
	}
	noDir(t, dir)
}
