package testutil

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
)

// built is the vtrace binary of this test binary: built once, into a
// directory of its own that Main removes when the tests are done.
var built struct {
	once sync.Once
	dir  string
	bin  string
	err  error
}

// mainRuns is set by Main before any test runs.
var mainRuns bool

// binPrefix starts the name of the directory BuildVtrace builds into; the
// test binary's process id follows it, so that a run that was killed
// before Main could clean up is recognised and its directory removed.
const binPrefix = "vtrace-bin-"

// Main runs the tests of a package whose tests build the binary
// (BuildVtrace, StartAgent, internal/vmtest), then the package's own
// cleanups, after (an error fails the run), then removes what was built,
// so that the tests leave the machine as they found it. It does not return:
//
//	func TestMain(m *testing.M) { testutil.Main(m) }
func Main(m *testing.M, after ...func() error) {
	mainRuns = true
	code := m.Run()
	for _, f := range after {
		if err := f(); err != nil {
			fmt.Fprintln(os.Stderr, err)
			code = max(code, 1)
		}
	}
	if built.dir != "" {
		if err := os.RemoveAll(built.dir); err != nil {
			fmt.Fprintf(os.Stderr, "remove the built vtrace: %v\n", err)
			code = max(code, 1)
		}
	}
	os.Exit(code)
}

// BuildVtrace builds the static vtrace binary once per test binary and
// returns its path. The package's TestMain must call Main, which removes
// the binary afterwards; without it the test fails.
func BuildVtrace(t testing.TB) string {
	t.Helper()
	if !mainRuns {
		t.Fatal("BuildVtrace needs the package's TestMain to call testutil.Main, which removes the binary when the tests are done")
	}
	built.once.Do(func() {
		removeStale()
		built.dir, built.err = os.MkdirTemp("", binPrefix+strconv.Itoa(os.Getpid())+"-")
		if built.err != nil {
			return
		}
		bin := filepath.Join(built.dir, "vtrace")
		cmd := exec.Command("go", "build", "-o", bin, "./cmd/vtrace")
		cmd.Dir = Repo(t)
		cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
		if out, err := cmd.CombinedOutput(); err != nil {
			built.err = fmt.Errorf("%w: %s", err, out)
			return
		}
		built.bin = bin
	})
	if built.err != nil {
		t.Fatalf("build vtrace: %v", built.err)
	}
	return built.bin
}

// removeStale removes the build directories of test binaries that are
// gone (killed before Main could remove theirs). A directory whose process
// still exists is left alone, whoever that process is now.
func removeStale() {
	dirs, _ := filepath.Glob(filepath.Join(os.TempDir(), binPrefix+"*-*"))
	for _, d := range dirs {
		pid, _, ok := strings.Cut(strings.TrimPrefix(filepath.Base(d), binPrefix), "-")
		if _, err := strconv.Atoi(pid); err != nil || !ok {
			continue
		}
		if _, err := os.Stat(filepath.Join("/proc", pid)); errors.Is(err, fs.ErrNotExist) {
			os.RemoveAll(d)
		}
	}
}
