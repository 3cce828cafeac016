package testutil

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"

	"golang.org/x/sys/unix"
)

// Libvirtd is a private libvirtd that scripts/libvirtd.sh runs for the tests
// in a mount and a network namespace of its own: its configuration (the
// packaged one, qemu.conf untouched), run, state, log and cache directories
// live under Dir, and nothing of the machine's libvirt is read or changed
// beyond the packaged configuration files it copies.
type Libvirtd struct {
	Dir string // DIR of scripts/libvirtd.sh: DIR/etc, DIR/run/libvirt, DIR/log/libvirtd.log, ...
	URI string // qemu:///system?socket=DIR/run/libvirt/libvirt-sock
	PID int    // libvirtd's process id
	// TCP is set when it also listens, without authentication, on
	// 127.0.0.1:16509 of its own network namespace (TCPURI), which only
	// processes that joined that namespace reach (Command, InNetNS).
	TCP bool

	script string
}

// TCPURI is the qemu+tcp URI of a daemon started with TCP, valid inside its
// network namespace only.
const TCPURI = "qemu+tcp://127.0.0.1/system"

// dirPrefix starts the name of every directory StartLibvirtd makes under the
// system's temporary directory; ownerFile in it names the process that
// started it.
const (
	dirPrefix = "vtrace-libvirtd-"
	ownerFile = "owner"
)

// StartLibvirtd starts a private libvirtd (`scripts/libvirtd.sh start DIR`,
// with --tcp when tcp) in a new directory under the system's temporary
// directory, after stopping any that an earlier test process started and
// left behind when it was killed. repo is the repository's top directory.
func StartLibvirtd(repo string, tcp bool) (*Libvirtd, error) {
	script := filepath.Join(repo, "scripts", "libvirtd.sh")
	sweepLibvirtds(script)
	dir, err := os.MkdirTemp("", dirPrefix)
	if err != nil {
		return nil, err
	}
	if err := os.WriteFile(filepath.Join(dir, ownerFile), []byte(strconv.Itoa(os.Getpid())), 0o600); err != nil {
		os.RemoveAll(dir)
		return nil, err
	}
	args := []string{script, "start", dir}
	if tcp {
		args = append(args, "--tcp")
	}
	if out, err := exec.Command("bash", args...).CombinedOutput(); err != nil {
		exec.Command("bash", script, "stop", dir).Run()
		os.RemoveAll(dir)
		return nil, fmt.Errorf("scripts/libvirtd.sh start: %v: %s", err, out)
	}
	d := &Libvirtd{Dir: dir, URI: "qemu:///system?socket=" + filepath.Join(dir, "run", "libvirt", "libvirt-sock"),
		TCP: tcp, script: script}
	b, err := os.ReadFile(filepath.Join(dir, "libvirtd.pid"))
	if err == nil {
		d.PID, err = strconv.Atoi(strings.TrimSpace(string(b)))
	}
	if err != nil {
		d.Stop()
		return nil, fmt.Errorf("read the pid of the private libvirtd: %v", err)
	}
	return d, nil
}

// sweepLibvirtds stops and removes the private libvirtds whose starting
// process is gone.
func sweepLibvirtds(script string) {
	dirs, _ := filepath.Glob(filepath.Join(os.TempDir(), dirPrefix+"*"))
	for _, dir := range dirs {
		b, err := os.ReadFile(filepath.Join(dir, ownerFile))
		if err != nil {
			continue
		}
		pid, err := strconv.Atoi(string(b))
		if err != nil || pid <= 0 || !errors.Is(syscall.Kill(pid, 0), syscall.ESRCH) {
			continue // unreadable, or its process still runs
		}
		if exec.Command("bash", script, "stop", dir).Run() == nil {
			os.RemoveAll(dir)
		}
	}
}

// Stop stops the daemon, everything left in its namespaces (domains are
// destroyed first) and removes Dir.
func (d *Libvirtd) Stop() error {
	if out, err := exec.Command("bash", d.script, "stop", d.Dir).CombinedOutput(); err != nil {
		return fmt.Errorf("scripts/libvirtd.sh stop %s: %v: %s", d.Dir, err, out)
	}
	return os.RemoveAll(d.Dir)
}

// Socket is the path of the daemon's read-write socket.
func (d *Libvirtd) Socket() string { return filepath.Join(d.Dir, "run", "libvirt", "libvirt-sock") }

// NetNS is the path of the daemon's network namespace.
func (d *Libvirtd) NetNS() string { return fmt.Sprintf("/proc/%d/ns/net", d.PID) }

// Command returns a command that runs name in the daemon's network
// namespace (through nsenter), and in this process's mount namespace.
func (d *Libvirtd) Command(name string, args ...string) *exec.Cmd {
	return exec.Command("nsenter", append([]string{"--net=" + d.NetNS(), "--", name}, args...)...)
}

// InNetNS runs fn on an OS thread that joined the daemon's network
// namespace, and returns its error. Sockets fn opens belong to that
// namespace and keep working from any goroutine afterwards. The thread goes
// back to this process's namespace afterwards; if it cannot, it stays locked
// to fn's goroutine and ends with it.
func (d *Libvirtd) InNetNS(fn func() error) error {
	errc := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		home, err := os.Open("/proc/thread-self/ns/net")
		if err != nil {
			runtime.UnlockOSThread()
			errc <- err
			return
		}
		defer home.Close()
		ns, err := os.Open(d.NetNS())
		if err != nil {
			runtime.UnlockOSThread()
			errc <- err
			return
		}
		defer ns.Close()
		if err := unix.Setns(int(ns.Fd()), unix.CLONE_NEWNET); err != nil {
			runtime.UnlockOSThread()
			errc <- fmt.Errorf("join the network namespace of libvirtd %d: %w", d.PID, err)
			return
		}
		err = fn()
		if unix.Setns(int(home.Fd()), unix.CLONE_NEWNET) == nil {
			runtime.UnlockOSThread()
		}
		errc <- err
	}()
	return <-errc
}

var (
	libvirtdMu sync.Mutex
	libvirtds  = map[bool]*Libvirtd{} // by TCP
	startErrs  = map[bool]error{}
)

// PrivateLibvirtd returns this test binary's private libvirtd (with a TCP
// listener in its network namespace when tcp), starting it on first use;
// StopLibvirtds, called from TestMain, stops it. It needs root and libvirt's
// programs, and skips (fails under CI) without them.
func PrivateLibvirtd(t testing.TB, tcp bool) *Libvirtd {
	t.Helper()
	NeedRoot(t)
	NeedProgram(t, "libvirtd", "libvirt-daemon-system")
	NeedProgram(t, "virtlogd", "libvirt-daemon-system")
	NeedProgram(t, "virsh", "libvirt-clients")
	NeedProgram(t, "nsenter", "util-linux")
	libvirtdMu.Lock()
	defer libvirtdMu.Unlock()
	if d := libvirtds[tcp]; d != nil {
		return d
	}
	if err := startErrs[tcp]; err == nil {
		d, err := StartLibvirtd(Repo(t), tcp)
		if err != nil {
			startErrs[tcp] = err
		} else {
			libvirtds[tcp] = d
			return d
		}
	}
	Need(t, false, "a private libvirtd", fmt.Sprintf("scripts/libvirtd.sh (%v)", startErrs[tcp]))
	return nil
}

// StopLibvirtds stops the libvirtds PrivateLibvirtd started. Call it from
// TestMain after m.Run; it returns the first error.
func StopLibvirtds() error {
	libvirtdMu.Lock()
	defer libvirtdMu.Unlock()
	var first error
	for k, d := range libvirtds {
		if err := d.Stop(); err != nil && first == nil {
			first = err
		}
		delete(libvirtds, k)
	}
	return first
}
