package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"

	"github.com/spf13/cobra"

	"github.com/vtrace/vtrace/internal/cli"
)

// usageError marks an error in the command line: exit code 2.
type usageError struct{ err error }

func (e usageError) Error() string { return e.err.Error() }
func (e usageError) Unwrap() error { return e.err }

// exitCode is the process's exit code for an error execute got: 2 for a
// usage error (unknown flag or command, bad flag value, wrong number of
// arguments), 1 for any other.
func exitCode(err error) int {
	var u usageError
	if errors.As(err, &u) || cli.IsUsage(err) {
		return 2
	}
	return 1
}

// version is this build's, told to the agent in the handshake.
var version = cli.ReadBuild().Short()

// execute runs the command line args (without the program's name) and
// returns the exit code: 0, 1 for an error while running, 2 for a usage
// error. Errors are printed on stderr.
func execute(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	root := newRootCmd()
	if args == nil {
		args = []string{} // nil would make cobra read os.Args
	}
	root.SetArgs(args)
	root.SetOut(stdout)
	root.SetErr(stderr)
	if err := root.ExecuteContext(ctx); err != nil {
		fmt.Fprintf(stderr, "vtrace: %v\n", err)
		return exitCode(err)
	}
	return 0
}

func newRootCmd() *cobra.Command {
	guest := newGroupCmd("guest", "Commands that run inside the guest", newGuestAgentCmd())
	guest.Long = `Commands that run inside the guest. The guest binary, vtrace-guest, has
them without the host's commands (and without cobra, libvirt or SSH code):
installed as vtrace it takes the same command lines (vtrace guest agent ...),
as vtrace-guest the shorter vtrace-guest agent ...; vtrace-guest install
installs it and the agent's systemd unit or init script.`
	root := newGroupCmd("vtrace", "Stream ftrace data from a virtual machine to its host",
		guest,
		newGroupCmd("host", "Commands that run on the host", newHostCmds()...),
		newVersionCmd(),
	)
	root.Version = version
	root.SetVersionTemplate(versionReport())
	root.SilenceUsage = true
	root.SilenceErrors = true
	root.SetFlagErrorFunc(func(_ *cobra.Command, err error) error { return usageError{err} })
	// cobra adds these when it executes; added now, they get the same
	// treatment as the others.
	root.InitDefaultHelpCmd()
	root.InitDefaultCompletionCmd()
	for _, c := range root.Commands() {
		if c.Name() == "help" {
			c.Args = helpArgs
		}
	}
	markUsageErrors(root)
	return root
}

func newVersionCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "version",
		Short: "Print vtrace's version, VCS revision and time, and Go version",
		Long: `Print the module version, the VCS revision and commit time the binary was
built from, and the Go toolchain that built it, as recorded in the binary
(runtime/debug.ReadBuildInfo). --version prints the same.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			_, err := io.WriteString(cmd.OutOrStdout(), versionReport())
			return err
		},
	}
}

// versionReport is what `vtrace version` and `vtrace --version` print.
func versionReport() string {
	var b strings.Builder
	cli.ReadBuild().Write(&b, "vtrace")
	return b.String()
}

// newGroupCmd is a command that only holds subcommands: alone it prints its
// help, and a word that names none of them is an unknown command.
func newGroupCmd(use, short string, subs ...*cobra.Command) *cobra.Command {
	c := &cobra.Command{Use: use, Short: short}
	c.AddCommand(subs...)
	return c
}

// markUsageErrors makes every error cobra finds in a command line a
// usageError. The flag error hook (inherited from the root) covers flags;
// it does not see Args validators, so each is wrapped. A command that only
// holds subcommands is not run by cobra, which then prints its help
// whatever words follow: it gets a RunE that refuses an unknown one.
func markUsageErrors(c *cobra.Command) {
	if c.HasSubCommands() && !c.Runnable() {
		c.Args = cobra.ArbitraryArgs
		c.RunE = runGroup
		c.DisableFlagsInUseLine = true
	}
	if check := c.Args; check != nil {
		c.Args = func(cmd *cobra.Command, args []string) error {
			if err := check(cmd, args); err != nil {
				return usageError{err}
			}
			return nil
		}
	}
	for _, sub := range c.Commands() {
		markUsageErrors(sub)
	}
}

func runGroup(cmd *cobra.Command, args []string) error {
	if len(args) == 0 {
		return cmd.Help()
	}
	msg := fmt.Sprintf("unknown command %q for %q", args[0], cmd.CommandPath())
	cmd.SuggestionsMinimumDistance = 2
	if s := cmd.SuggestionsFor(args[0]); len(s) > 0 {
		msg += ": did you mean " + strings.Join(s, " or ") + "?"
	}
	return usageError{errors.New(msg)}
}

// helpArgs refuses a help topic that names no command.
func helpArgs(cmd *cobra.Command, args []string) error {
	if _, rest, err := cmd.Root().Find(args); err != nil || len(rest) > 0 {
		return fmt.Errorf("unknown help topic %q", strings.Join(args, " "))
	}
	return nil
}

// oneArg accepts exactly one argument, called what in the error.
func oneArg(what string) cobra.PositionalArgs {
	return func(cmd *cobra.Command, args []string) error {
		if len(args) != 1 {
			return fmt.Errorf("%s takes one %s, got %d arguments", cmd.Name(), what, len(args))
		}
		return nil
	}
}
