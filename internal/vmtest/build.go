package vmtest

// Building the guests: scripts/build-guest.sh (and scripts/build-c-agent.sh
// for a guest with the kernel's C agent), once per test binary and guest
// directory.

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/vtrace/vtrace/internal/testutil"
)

var (
	buildMu sync.Mutex
	builds  = map[string]*built{} // by guest directory

	cAgentOnce sync.Once
	cAgentErr  error
)

// built is one guest directory's build, done once per test binary.
type built struct {
	once sync.Once
	err  error
}

// buildOnce runs scripts/build-guest.sh -k kernel -o dir with env added,
// once per test binary and directory; later calls return the first one's
// error.
func buildOnce(repo, kernel, dir string, env ...string) error {
	buildMu.Lock()
	b := builds[dir]
	if b == nil {
		b = &built{}
		builds[dir] = b
	}
	buildMu.Unlock()
	b.once.Do(func() { b.err = buildGuestInto(repo, kernel, dir, env...) })
	return b.err
}

// guestDirOf is where the guest of kernel is built: $VTRACE_GUEST_DIR or
// build/guest, then "-c" for a guest with the kernel's C agent, then
// "-KERNEL" for a kernel other than DefaultKernel (build/guest-6.12,
// build/guest-c-6.12).
func guestDirOf(repo, kernel string, cAgent bool) string {
	dir := os.Getenv("VTRACE_GUEST_DIR")
	if dir == "" {
		dir = filepath.Join(repo, "build", "guest")
	}
	if cAgent {
		dir += "-c"
	}
	if kernel != DefaultKernel {
		dir += "-" + kernel
	}
	return dir
}

// build runs scripts/build-guest.sh once per test binary and kernel, into
// guestDirOf(kernel), with the vtrace testutil builds, and returns the guest
// directory and that vtrace.
func build(t testing.TB, kernel string) (dir, vtrace string) {
	t.Helper()
	needGuestParts(t, kernel)
	repo := testutil.Repo(t)
	bin := testutil.BuildVtrace(t)
	dir = guestDirOf(repo, kernel, false)
	if err := buildOnce(repo, kernel, dir, "VTRACE_BIN="+bin); err != nil {
		t.Fatal(err)
	}
	return dir, bin
}

// buildWithCAgent builds, once per test binary, the kernel's C agent
// (scripts/build-c-agent.sh into build/c-agent) and, once per kernel, a
// guest holding it as /bin/trace-agent, in guestDirOf(kernel, true)
// (build/guest-c for 6.1): the default guests stay without it.
func buildWithCAgent(t testing.TB, kernel string) (dir, vtrace string) {
	t.Helper()
	needGuestParts(t, kernel)
	_, err := exec.LookPath("gcc")
	sources, _ := filepath.Glob("/usr/src/linux-source-*.tar.xz")
	testutil.Need(t, err == nil && len(sources) > 0, "gcc and Debian's Linux source (for the kernel's C agent)",
		"scripts/deps.sh, or apt-get install -y --no-install-recommends linux-source-6.1 gcc libc6-dev")
	repo := testutil.Repo(t)
	bin := testutil.BuildVtrace(t)
	agentDir := filepath.Join(repo, "build", "c-agent")
	cAgentOnce.Do(func() {
		cmd := exec.Command("bash", filepath.Join(repo, "scripts", "build-c-agent.sh"), "-o", agentDir)
		if out, err := cmd.CombinedOutput(); err != nil {
			cAgentErr = fmt.Errorf("build the kernel's C agent: %w\n%s", err, out)
		}
	})
	if cAgentErr != nil {
		t.Fatal(cAgentErr)
	}
	dir = guestDirOf(repo, kernel, true)
	if err := buildOnce(repo, kernel, dir, "VTRACE_BIN="+bin, "C_AGENT="+filepath.Join(agentDir, "trace-agent")); err != nil {
		t.Fatal(err)
	}
	return dir, bin
}

// buildGuestInto runs scripts/build-guest.sh -k kernel -o dir with env added.
func buildGuestInto(repo, kernel, dir string, env ...string) error {
	cmd := exec.Command("bash", filepath.Join(repo, "scripts", "build-guest.sh"), "-k", kernel, "-o", dir)
	cmd.Env = append(os.Environ(), env...)
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("build guest of kernel %s: %w\n%s", kernel, err, out)
	}
	return nil
}

// needGuestParts skips (fails under CI) a test on a machine without what
// the guest of kernel is made of.
func needGuestParts(t testing.TB, kernel string) {
	t.Helper()
	qemu, err := exec.LookPath("qemu-system-x86_64")
	testutil.Need(t, err == nil && qemu != "", "qemu-system-x86_64",
		"apt-get install -y --no-install-recommends qemu-system-x86")
	_, err = os.Stat("/bin/busybox")
	testutil.Need(t, err == nil, "busybox-static", "apt-get install -y --no-install-recommends busybox-static")
	// The script looks only (-n): fetching is scripts/deps.sh's job.
	out, err := exec.Command("bash", filepath.Join(testutil.Repo(t), "scripts", "guest-kernel.sh"), "-n", kernel).CombinedOutput()
	how := "scripts/deps.sh (it fetches Debian's bookworm-backports " + kernel + " kernel into a cache), or scripts/guest-kernel.sh " + kernel
	if kernel == Kernel61 {
		how = "apt-get install -y --no-install-recommends linux-image-amd64"
	}
	testutil.Need(t, err == nil, "a Debian "+kernel+" kernel for the guest ("+strings.TrimSpace(string(out))+")", how)
}
