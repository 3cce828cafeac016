package main

import (
	"context"
	"io"

	"github.com/spf13/cobra"

	"github.com/vtrace/vtrace/host/session"
)

type hostStatusOptions struct {
	target
	agentFlags
	out io.Writer
}

func newHostStatusCmd() *cobra.Command {
	var opts hostStatusOptions
	cmd := &cobra.Command{
		Use:   "status [<domain> | --dir DIR]",
		Short: "Ask the guest agent what it is doing",
		Long: `Ask the vtrace agent in the guest for its state (idle or recording), the
settings of its recording, its per-CPU counters (lost events included), its
version and the guest's kernel.

Only one host command at a time can talk to the agent: while a
'collect --start' runs, status fails at once (its live line shows the same
counters). An agent that does not answer the handshake (the kernel's C agent)
cannot say: status then fails.`,
		Args: cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			opts.fill(args)
			opts.out = cmd.OutOrStdout()
			return runHostStatus(cmd.Context(), opts)
		},
	}
	opts.target.addFlags(cmd)
	opts.agentFlags.addFlags(cmd, "how long to wait for a reader of the control FIFO, and for the agent's reply")
	return cmd
}

func runHostStatus(ctx context.Context, opts hostStatusOptions) error {
	_, sess, err := openSession(ctx, opts.target, opts.agentFlags)
	if err != nil {
		return err
	}
	defer sess.Close()
	st, err := sess.Status(ctx)
	if err != nil {
		return err
	}
	return session.WriteStatus(opts.out, sess.Hello(), st)
}
