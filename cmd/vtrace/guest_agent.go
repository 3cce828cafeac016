package main

import (
	"github.com/spf13/cobra"

	"github.com/vtrace/vtrace/internal/cli"
)

func newGuestAgentCmd() *cobra.Command {
	opts := cli.NewAgentOptions()
	cmd := &cobra.Command{
		Use:   cli.AgentUse,
		Short: cli.AgentShort,
		Long:  cli.AgentLong,
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return cli.RunAgent(cmd.Context(), *opts, cmd.ErrOrStderr(), version)
		},
	}
	addFlags(cmd, opts.Flags())
	return cmd
}

// addFlags gives cmd the flags of a shared table (internal/cli), which the
// guest binary parses too.
func addFlags(cmd *cobra.Command, flags []cli.Flag) {
	for _, f := range flags {
		pf := cmd.Flags().VarPF(f.Value, f.Name, f.Shorthand, f.Usage)
		if f.IsBool() {
			pf.NoOptDefVal = "true"
		}
	}
}
