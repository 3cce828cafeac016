package main

import (
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/vtrace/vtrace/internal/cli"
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
	for _, name := range []string{"stdout", "pipe-size", "tracefs", "ports-dir", "cpus", "verbose", "drain-timeout", "instance", "buffer-percent", "help"} {
		if f := cmd.Flags().Lookup(name); f != nil {
			got[name] = f.Shorthand
		}
	}
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
