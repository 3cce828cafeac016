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

	"github.com/google/go-cmp/cmp"
	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/vtrace/vtrace/internal/cli"
	"github.com/vtrace/vtrace/internal/testutil"
)

// TestGuestAgentFlagsParseAlike: the guest binary's parser (cli.Parse)
// reads every command line the way pflag reads it for `vtrace guest
// agent`: the same options, the same words left over, and an error for
// the same lines.
func TestGuestAgentFlagsParseAlike(t *testing.T) {
	for _, args := range [][]string{
		{},
		{"-o"},
		{"--stdout"},
		{"--stdout=false"},
		{"--stdout", "false"}, // "false" is a word, not the flag's value
		{"-s", "256K"},
		{"-s256K"},
		{"-s=2M"},
		{"-os", "128K"},
		{"-os128K"},
		{"--pipe-size", "64K", "--pipe-size=4M"},
		{"--pipe-size"},
		{"-s"},
		{"--pipe-size", "1X"},
		{"--cpus", "0-3,5", "--tracefs", "/sys/kernel/tracing/instances/foo"},
		{"--cpus", "3-1"},
		{"--ports-dir=/tmp/p", "--verbose", "--drain-timeout", "1m30s"},
		{"--drain-timeout", "soon"},
		{"--instance", "mine", "--buffer-percent", "50"},
		{"--buffer-percent=-1"},
		{"--buffer-percent", "0x10"},
		{"--buffer-percent", "ten"},
		{"--subbuf-size", "16K"},
		{"--subbuf-size=64k"},
		{"--subbuf-size", "12K"},
		{"--subbuf-size", "2K"},
		{"--latency", "250ms"},
		{"--latency=0"},
		{"--latency", "1"},
		{"--no-such-flag"},
		{"-x"},
		{"-ox"},
		{"word"},
		{"-o", "--", "-s", "1M"},
		{"-"},
		{"--verbose=maybe"},
		{"--=x"},
	} {
		pf, pflagRest, pflagErr := parseWithPflag(args)
		own := cli.NewAgentOptions()
		ownRest, ownErr := cli.Parse(own.Flags(), args)
		if (pflagErr != nil) != (ownErr != nil) {
			t.Errorf("%q: pflag's error %v, cli.Parse's %v", args, pflagErr, ownErr)
			continue
		}
		if ownErr != nil {
			if !cli.IsUsage(ownErr) {
				t.Errorf("%q: cli.Parse's error %v is not a usage error", args, ownErr)
			}
			continue
		}
		if d := cmp.Diff(pf, own); d != "" {
			t.Errorf("%q: options differ (-pflag +cli.Parse):\n%s", args, d)
		}
		if d := cmp.Diff(pflagRest, ownRest, cmp.Comparer(func(a, b []string) bool { return len(a) == 0 && len(b) == 0 || cmp.Equal(a, b) })); d != "" {
			t.Errorf("%q: words left differ (-pflag +cli.Parse):\n%s", args, d)
		}
	}
}

// parseWithPflag parses args as the cobra command does.
func parseWithPflag(args []string) (*cli.AgentOptions, []string, error) {
	o := cli.NewAgentOptions()
	cmd := &cobra.Command{Use: "agent"}
	addFlags(cmd, o.Flags())
	err := cmd.ParseFlags(args)
	return o, cmd.Flags().Args(), err
}

// TestGuestAgentCommandUsesSharedFlags: the cobra command has exactly the
// shared table's flags (and help), shorthands included.
func TestGuestAgentCommandUsesSharedFlags(t *testing.T) {
	cmd := newGuestAgentCmd()
	cmd.InitDefaultHelpFlag()
	got := map[string]string{}
	cmd.Flags().VisitAll(func(f *pflag.Flag) { got[f.Name] = f.Shorthand })
	want := map[string]string{"help": "h"}
	for _, f := range cli.NewAgentOptions().Flags() {
		want[f.Name] = f.Shorthand
	}
	if d := cmp.Diff(want, got); d != "" {
		t.Errorf("flags of vtrace guest agent (-want +got):\n%s", d)
	}
	n := 0
	cmd.Flags().VisitAll(func(*pflag.Flag) { n++ })
	if n != len(want) {
		t.Errorf("vtrace guest agent has %d flags, the shared table and help %d", n, len(want))
	}
}

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
