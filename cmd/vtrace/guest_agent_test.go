package main

import (
	"bufio"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/vtrace/vtrace/internal/testutil"
)

// TestIntegrationAgentPipeSizeFallback: with /proc/sys/fs/pipe-max-size
// below the default pipe size, the agent starts with pipes of that size
// and says so; an explicit --pipe-size over it is refused. The agent runs
// in a private mount namespace where a file of the test's is bound over
// pipe-max-size: the machine's own value never changes.
func TestIntegrationAgentPipeSizeFallback(t *testing.T) {
	testutil.NeedRoot(t)
	unshare := testutil.NeedProgram(t, "unshare", "util-linux")
	bin := testutil.BuildVtrace(t)
	inst := testutil.Instance(t, "vtrace-cmd-pipemax")
	machine, err := os.ReadFile("/proc/sys/fs/pipe-max-size")
	if err != nil {
		t.Fatal(err)
	}
	limit := filepath.Join(t.TempDir(), "pipe-max-size")
	if err := os.WriteFile(limit, []byte("524288\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	agent := func(args ...string) *exec.Cmd {
		script := `mount --bind "$0" /proc/sys/fs/pipe-max-size && exec "$@"`
		return exec.Command(unshare, append([]string{"--mount", "--propagation", "private", "sh", "-c", script, limit,
			bin, "guest", "agent", "-o", "--tracefs", inst, "--ports-dir", t.TempDir(), "--verbose"}, args...)...)
	}

	out, err := agent("--pipe-size", "1M").CombinedOutput()
	var exit *exec.ExitError
	if !errors.As(err, &exit) || exit.ExitCode() != 2 || !strings.Contains(string(out), "over /proc/sys/fs/pipe-max-size (512K)") {
		t.Errorf("--pipe-size 1M over a pipe-max-size of 512K: %v\n%s\nwant exit status 2 and the limit named", err, out)
	}

	cmd := agent()
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	lines := make(chan string, 256)
	go func() {
		defer close(lines)
		sc := bufio.NewScanner(stderr)
		for sc.Scan() {
			lines <- sc.Text()
		}
	}()
	var log []string
	noted, ready := false, false
	for timeout := time.After(30 * time.Second); !ready; {
		select {
		case line, ok := <-lines:
			if !ok {
				cmd.Wait()
				t.Fatalf("the agent exited before it was ready:\n%s", strings.Join(log, "\n"))
			}
			log = append(log, line)
			noted = noted || strings.Contains(line, "the default pipe size 1M is over /proc/sys/fs/pipe-max-size: each CPU's pipe is 512K")
			ready = strings.Contains(line, "msg=\"agent ready\"")
			if ready && !strings.Contains(line, "pipe=524288") {
				t.Errorf("agent ready with %q, want pipes of 524288 bytes", line)
			}
		case <-timeout:
			cmd.Process.Kill()
			cmd.Wait()
			t.Fatalf("the agent not ready within 30 s:\n%s", strings.Join(log, "\n"))
		}
	}
	if !noted {
		t.Errorf("no note of the smaller pipe before the agent was ready:\n%s", strings.Join(log, "\n"))
	}
	cmd.Process.Signal(syscall.SIGTERM)
	for line := range lines {
		log = append(log, line)
	}
	if err := cmd.Wait(); err != nil {
		t.Errorf("the agent after SIGTERM: %v\n%s", err, strings.Join(log, "\n"))
	}
	if now, _ := os.ReadFile("/proc/sys/fs/pipe-max-size"); string(now) != string(machine) {
		t.Errorf("the machine's pipe-max-size is %q, was %q", now, machine)
	}
}
