package virt

import (
	"crypto/sha256"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/vtrace/vtrace/internal/testutil"
)

// treeSum describes every entry under root: path, type and mode, owner,
// size, modification time, and the SHA-256 of a file's content or a
// symlink's target. Two equal sums mean nothing under root changed.
func treeSum(t *testing.T, root string) string {
	t.Helper()
	h := sha256.New()
	err := filepath.WalkDir(root, func(p string, e fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		st, err := os.Lstat(p)
		if err != nil {
			return err
		}
		s := st.Sys().(*syscall.Stat_t)
		fmt.Fprintf(h, "%s %v %d:%d %d %d ", strings.TrimPrefix(p, root), st.Mode(), s.Uid, s.Gid, st.Size(), st.ModTime().UnixNano())
		switch {
		case st.Mode().IsRegular():
			b, err := os.ReadFile(p)
			if err != nil {
				return err
			}
			fmt.Fprintf(h, "%x\n", sha256.Sum256(b))
		case st.Mode()&fs.ModeSymlink != 0:
			l, _ := os.Readlink(p)
			fmt.Fprintf(h, "-> %s\n", l)
		default:
			fmt.Fprintln(h)
		}
		return nil
	})
	if err != nil {
		t.Fatalf("checksum %s: %v", root, err)
	}
	return fmt.Sprintf("%x", h.Sum(nil))
}

// standIn is a libvirtd started the way a distribution starts the machine's
// (`virtlogd -d; libvirtd -d`: default pid file /run/libvirtd.pid, default
// sockets under /run/libvirt, configuration in /etc/libvirt), in mount and
// network namespaces where a full copy of this machine's /etc/libvirt and
// empty run, state, log and cache directories of Dir stand in for the
// machine's.
type standIn struct {
	Dir string
	PID int
}

func startStandIn(t *testing.T) *standIn {
	t.Helper()
	dir, err := os.MkdirTemp("", "vtrace-standin-")
	if err != nil {
		t.Fatal(err)
	}
	s := &standIn{Dir: dir}
	t.Cleanup(func() { s.stop(t) })
	script := `set -eu
d=$1
cp -a /etc/libvirt "$d/etc"
mkdir -m 0755 "$d/run" "$d/lib" "$d/log"
mkdir -m 0711 "$d/cache"
mount --bind "$d/etc" /etc/libvirt
mount --bind "$d/run" /run
mount --bind "$d/lib" /var/lib/libvirt
mount --bind "$d/log" /var/log/libvirt
mount --bind "$d/cache" /var/cache/libvirt
ip link set lo up
virtlogd -d
libvirtd -d
for i in $(seq 1 120); do
	virsh -q -c qemu:///system list --all >/dev/null 2>&1 && exit 0
	sleep 0.5
done
exit 1`
	cmd := exec.Command("unshare", "--mount", "--net", "--propagation", "private", "--", "bash", "-c", script, "standin", dir)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("start the stand-in machine libvirtd: %v\n%s", err, out)
	}
	b, err := os.ReadFile(filepath.Join(dir, "run", "libvirtd.pid"))
	if err == nil {
		s.PID, err = strconv.Atoi(strings.TrimSpace(string(b)))
	}
	if err != nil {
		t.Fatalf("the stand-in libvirtd's pid file: %v", err)
	}
	return s
}

// cmd runs name in the stand-in's mount and network namespaces, in the
// working directory of this process.
func (s *standIn) cmd(name string, args ...string) *exec.Cmd {
	wd, _ := os.Getwd()
	return exec.Command("nsenter", append([]string{"--target", strconv.Itoa(s.PID), "--mount", "--net", "--wd=" + wd, "--", name}, args...)...)
}

func (s *standIn) virsh(t *testing.T, args ...string) string {
	t.Helper()
	out, err := s.cmd("virsh", append([]string{"-q", "-c", "qemu:///system"}, args...)...).CombinedOutput()
	if err != nil {
		t.Fatalf("virsh %s in the stand-in: %v\n%s", strings.Join(args, " "), err, out)
	}
	return strings.TrimSpace(string(out))
}

// stop ends every process in the stand-in's network namespace (its
// virtlogd and libvirtd) and removes Dir.
func (s *standIn) stop(t *testing.T) {
	if s.PID > 0 {
		ns, err := os.Readlink(fmt.Sprintf("/proc/%d/ns/net", s.PID))
		if err == nil {
			for _, sig := range []syscall.Signal{syscall.SIGTERM, syscall.SIGKILL} {
				left := s.members(ns)
				for _, p := range left {
					syscall.Kill(p, sig)
				}
				for i := 0; i < 100 && len(s.members(ns)) > 0; i++ {
					time.Sleep(100 * time.Millisecond)
				}
			}
			if left := s.members(ns); len(left) > 0 {
				t.Errorf("stand-in processes %v survive", left)
			}
		}
	}
	os.RemoveAll(s.Dir)
}

// members lists the processes in network namespace ns.
func (s *standIn) members(ns string) []int {
	var pids []int
	ents, _ := os.ReadDir("/proc")
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil || pid == os.Getpid() {
			continue
		}
		if l, err := os.Readlink(fmt.Sprintf("/proc/%d/ns/net", pid)); err == nil && l == ns {
			pids = append(pids, pid)
		}
	}
	return pids
}

// machineState is what the tests must leave alone on the stand-in machine.
type machineState struct {
	PID, PIDFile string
	Socket       uint64 // inode of /run/libvirt/libvirt-sock
	Etc          string // treeSum of /etc/libvirt
	Domains      string
}

func (s *standIn) state(t *testing.T) machineState {
	t.Helper()
	var m machineState
	if _, err := os.Stat(fmt.Sprintf("/proc/%d", s.PID)); err == nil {
		comm, _ := os.ReadFile(fmt.Sprintf("/proc/%d/comm", s.PID))
		m.PID = fmt.Sprintf("%d %s", s.PID, strings.TrimSpace(string(comm)))
	}
	b, _ := os.ReadFile(filepath.Join(s.Dir, "run", "libvirtd.pid"))
	m.PIDFile = strings.TrimSpace(string(b))
	if st, err := os.Stat(filepath.Join(s.Dir, "run", "libvirt", "libvirt-sock")); err == nil {
		m.Socket = st.Sys().(*syscall.Stat_t).Ino
	}
	m.Etc = treeSum(t, filepath.Join(s.Dir, "etc"))
	m.Domains = s.virsh(t, "list", "--all", "--name")
	return m
}

// TestIntegrationLeavesMachineLibvirtAlone runs this package's libvirt
// tests (local, running domain, TCP and ssh) on a machine where a libvirtd
// was started the usual way before them, and checks that it still runs,
// with the same pid, pid file, socket, configuration and domains, and that
// /etc/libvirt (the real one) did not change. The machine is a stand-in: the
// test's own mount and network namespaces with a copy of /etc/libvirt, so
// that the real machine's libvirt is not touched even if the tests were to
// misbehave.
func TestIntegrationLeavesMachineLibvirtAlone(t *testing.T) {
	testutil.NeedRoot(t)
	for _, p := range [][2]string{{"libvirtd", "libvirt-daemon-system"}, {"virsh", "libvirt-clients"},
		{"unshare", "util-linux"}, {"nsenter", "util-linux"}, {"ip", "iproute2"}, {"qemu-system-x86_64", "qemu-system-x86"}} {
		testutil.NeedProgram(t, p[0], p[1])
	}
	etc := treeSum(t, "/etc/libvirt")
	_, runErr := os.Lstat("/run/libvirt")

	s := startStandIn(t)
	kernel, initrd := bootFiles(t)
	decoy := filepath.Join(s.Dir, "decoy.xml")
	if err := os.WriteFile(decoy, []byte(fmt.Sprintf(`<domain type='qemu'><name>vtrace-decoy</name><memory unit='MiB'>64</memory>
<os><type arch='x86_64' machine='pc'>hvm</type><kernel>%s</kernel><initrd>%s</initrd></os></domain>`, kernel, initrd)), 0o644); err != nil {
		t.Fatal(err)
	}
	s.virsh(t, "define", decoy)
	before := s.state(t)
	if before.PID == "" || before.PID != before.PIDFile+" libvirtd" || before.Socket == 0 || before.Domains != "vtrace-decoy" {
		t.Fatalf("the stand-in libvirtd is not as started: %+v", before)
	}

	run := `^TestIntegration(SetupTeardown|RunningDomain|RemoteTCP|RemoteSSH)$`
	cmd := s.cmd(os.Args[0], "-test.run", run, "-test.count", "1", "-test.v")
	out, err := cmd.CombinedOutput()
	t.Logf("the libvirt tests on the stand-in machine:\n%s", out)
	if err != nil {
		t.Errorf("the libvirt tests failed on a machine with a running libvirtd: %v", err)
	}
	if n := strings.Count(string(out), "--- PASS: TestIntegration"); n != 4 {
		t.Errorf("%d of the 4 tests passed on the stand-in machine", n)
	}

	after := s.state(t)
	if after != before {
		t.Errorf("the machine's libvirtd was disturbed:\nbefore %+v\nafter  %+v", before, after)
	}
	if got := treeSum(t, "/etc/libvirt"); got != etc {
		t.Errorf("/etc/libvirt changed: checksum %s, was %s", got, etc)
	}
	if _, err := os.Lstat("/run/libvirt"); (err == nil) != (runErr == nil) {
		t.Errorf("/run/libvirt: %v after the tests, %v before", err, runErr)
	}
}
