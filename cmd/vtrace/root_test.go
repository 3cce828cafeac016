package main

import (
	"bytes"
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
)

// usageCases are, per command (its path after "vtrace"), command lines
// that are wrong in ways only that command knows: each must exit 2 before
// anything runs. Every command of the tree needs an entry, so that a new
// command's author thinks about its own cases; the ones every command gets
// (an unknown flag, extra words, a bad value for each typed flag) are in
// TestExitCodeUsage.
var usageCases = map[string][][]string{
	"":                      {{"bogus"}, {"hots"}},
	"guest":                 {{"bogus"}},
	"guest agent":           {{"--pipe-size", "32K"}, {"--pipe-size", "1.5M"}, {"--pipe-size", "0"}, {"--pipe-size", "64P"}, {"--cpus", "3-1"}, {"--cpus", ""}, {"--buffer-percent", "0"}, {"--buffer-percent", "101"}},
	"host":                  {{"bogus"}},
	"host setup":            {{}, {"../etc"}, {"vm1", "--cpus", "-1"}, {"vm1", "vm2", "--dir", "/nonexistent"}, {"vm1", "../etc"}, {"vm1", "--config"}, {"../etc", "--live"}},
	"host teardown":         {{}, {"a/b"}, {"vm1", "vm2", "--dir", "/nonexistent"}, {"vm1", "--config"}},
	"host qemu-args":        {{}, {"--cpus", "0"}, {"--cpus", "2", "--dir", ""}},
	"host start":            {{}, {"vm1", "--dir", "/nonexistent"}, {"--dir", "/nonexistent", "--timeout", "0"}, {"--dir", "/nonexistent", "--buffer-size", "0"}, {"--dir", "/nonexistent", "--buffer-size", "4X"}, {"--dir", "/nonexistent", "--filter", "nofilter"}, {"--dir", "/nonexistent", "--events", "../etc:passwd"}, {"--dir", "/nonexistent", "--clock", "a b"}},
	"host stop":             {{}, {"--dir", "/nonexistent", "--handshake-timeout", "-1s"}, {"--dir", "/nonexistent", "--events", "sched"}},
	"host status":           {{}, {"..", "--timeout", "1s"}, {"vm1", "..", "--timeout", "1s"}, {"vm1", "--dir", "vm1=/nonexistent"}},
	"host collect":          {{}, {"--dir", "/nonexistent"}, {"--dir", "/nonexistent", "-o", "/nonexistent/out", "--events", "sched"}, {"--dir", "/nonexistent", "-o", "/nonexistent/out", "--page-size", "0"}, {"--dir", "/nonexistent", "-o", "/nonexistent/out", "--duration", "-1s"}, {"--dir", "/nonexistent", "-o", "/nonexistent/out", "--start", "--buffer-size", "1X"}, {"--dir", "/a/x", "--dir", "/b/x", "-o", "/nonexistent/out"}, {"--dir", "host=/a/x", "--dir", "/b/x", "-o", "/nonexistent/out"}, {"--dir", "..=/a/x", "--dir", "/b/x", "-o", "/nonexistent/out"}},
	"host convert":          {{}},
	"host stats":            {{}},
	"help":                  {{"bogus"}, {"host", "bogus"}},
	"completion":            {{"bogus"}},
	"completion bash":       nil,
	"completion fish":       nil,
	"completion powershell": nil,
	"completion zsh":        nil,
	"version":               nil,
}

// commands returns every command of the tree main runs, with its flags as
// the command line sees them (help and version included).
func commands(t *testing.T) []*cobra.Command {
	t.Helper()
	root := newRootCmd()
	root.InitDefaultVersionFlag()
	var all []*cobra.Command
	var walk func(*cobra.Command)
	walk = func(c *cobra.Command) {
		c.InitDefaultHelpFlag()
		all = append(all, c)
		for _, sub := range c.Commands() {
			walk(sub)
		}
	}
	walk(root)
	return all
}

// path is c's words after "vtrace".
func path(c *cobra.Command) []string { return strings.Fields(c.CommandPath())[1:] }

type exitCase struct {
	args []string
	want int
}

// run executes args as main does and checks the exit code. Usage errors
// get a context that is already cancelled: a command that got as far as
// running would stop at once rather than do something.
func (tc exitCase) run(t *testing.T) {
	t.Helper()
	ctx := context.Background()
	if tc.want == 2 {
		c, cancel := context.WithCancel(ctx)
		cancel()
		ctx = c
	}
	var stdout, stderr bytes.Buffer
	got := execute(ctx, tc.args, &stdout, &stderr)
	if got != tc.want {
		t.Errorf("vtrace %q: exit code %d, want %d\nstdout: %.300s\nstderr: %.300s", tc.args, got, tc.want, stdout.String(), stderr.String())
		return
	}
	if tc.want != 0 && !strings.HasPrefix(stderr.String(), "vtrace: ") {
		t.Errorf("vtrace %q: exit code %d with stderr %q, want the error after \"vtrace: \"", tc.args, got, stderr.String())
	}
}

// severalGuests are the commands that take any number of domains.
var severalGuests = map[string]bool{"host setup": true, "host teardown": true,
	"host status": true, "host collect": true}

func TestExitCodeUsage(t *testing.T) {
	seen := map[string]bool{}
	for _, c := range commands(t) {
		p := path(c)
		key := strings.Join(p, " ")
		seen[key] = true
		cases, ok := usageCases[key]
		if !ok {
			t.Errorf("command %q has no entry in usageCases: add its own wrong command lines (nil if it has none)", c.CommandPath())
		}
		with := func(args ...string) []string { return append(append([]string{}, p...), args...) }
		cmdCases := []exitCase{{with("--no-such-flag"), 2}}
		if !severalGuests[key] {
			cmdCases = append(cmdCases, exitCase{with("a", "b", "c", "d", "e"), 2})
		}
		c.Flags().VisitAll(func(f *pflag.Flag) {
			switch f.Value.Type() {
			case "string", "stringSlice", "stringArray": // any text parses
			default:
				cmdCases = append(cmdCases, exitCase{with("--" + f.Name + "=notvalid"), 2})
			}
		})
		for _, args := range cases {
			cmdCases = append(cmdCases, exitCase{with(args...), 2})
		}
		t.Run(c.CommandPath(), func(t *testing.T) {
			for _, tc := range cmdCases {
				tc.run(t)
			}
		})
	}
	for key := range usageCases {
		if !seen[key] {
			t.Errorf("usageCases has %q: no such command", key)
		}
	}
}

// TestExitCodeRuntime: errors while running exit 1, success 0.
func TestExitCodeRuntime(t *testing.T) {
	none := filepath.Join(t.TempDir(), "none")
	file := filepath.Join(t.TempDir(), "file")
	if err := os.WriteFile(file, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []exitCase{
		{[]string{"host", "convert", none}, 1},
		{[]string{"host", "stats", none}, 1},
		{[]string{"host", "start", "--dir", none, "--timeout", "1s"}, 1},
		{[]string{"host", "qemu-args", "--cpus", "1", "--create", "--dir", filepath.Join(file, "fifos")}, 1},
		{nil, 0},
		{[]string{"host"}, 0},
		{[]string{"help", "host", "collect"}, 0},
		{[]string{"--version"}, 0},
		{[]string{"version"}, 0},
		{[]string{"host", "qemu-args", "--cpus", "2"}, 0},
	} {
		tc.run(t)
	}
}

// TestExitCodeBinary: main passes execute's code to the shell.
func TestExitCodeBinary(t *testing.T) {
	bin := filepath.Join(t.TempDir(), "vtrace")
	if out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	for _, tc := range []exitCase{
		{[]string{"host", "setup"}, 2},
		{[]string{"host", "convert", filepath.Join(t.TempDir(), "none")}, 1},
		{[]string{"--version"}, 0},
	} {
		err := exec.Command(bin, tc.args...).Run()
		got := 0
		var exit *exec.ExitError
		if errors.As(err, &exit) {
			got = exit.ExitCode()
		} else if err != nil {
			t.Fatal(err)
		}
		if got != tc.want {
			t.Errorf("vtrace %q: exit code %d, want %d", tc.args, got, tc.want)
		}
	}
}
