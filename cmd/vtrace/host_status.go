package main

import (
	"context"
	"errors"
	"fmt"
	"io"

	"github.com/spf13/cobra"

	"github.com/vtrace/vtrace/host/session"
)

type hostStatusOptions struct {
	guests
	agentFlags
	out io.Writer
}

func newHostStatusCmd() *cobra.Command {
	var opts hostStatusOptions
	cmd := &cobra.Command{
		Use:   "status [<domain>... | --dir [NAME=]DIR...]",
		Short: "Ask the guest agent what it is doing",
		Long: `Ask the vtrace agent in the guest for its state (idle or recording), the
settings of its recording, its per-CPU counters (lost events included), its
version and the guest's kernel.

Only one host command at a time can talk to the agent: while a
'collect --start' runs, status fails at once (its live line shows the same
counters). An agent that does not answer the handshake (the kernel's C agent)
cannot say: status then fails.

With several domains (or --dir given more than once), each guest's agent is
asked in turn and its answer printed under a "== NAME ==" line; status fails
when any of them cannot say.`,
		RunE: func(cmd *cobra.Command, args []string) error {
			opts.fill(args)
			opts.out = cmd.OutOrStdout()
			return runHostStatus(cmd.Context(), opts)
		},
	}
	opts.guests.addFlags(cmd)
	opts.agentFlags.addFlags(cmd, "how long to wait for a reader of the control FIFO, and for the agent's reply")
	return cmd
}

func runHostStatus(ctx context.Context, opts hostStatusOptions) error {
	all, err := opts.resolve()
	if err != nil {
		return err
	}
	if len(all) == 1 {
		return guestStatus(ctx, all[0].target(), opts)
	}
	var errs []error
	for i, g := range all {
		if i > 0 {
			fmt.Fprintln(opts.out)
		}
		fmt.Fprintf(opts.out, "== %s ==\n", g.name)
		if err := guestStatus(ctx, g.target(), opts); err != nil {
			var u usageError
			if errors.As(err, &u) {
				return err
			}
			fmt.Fprintf(opts.out, "no status: %v\n", err)
			errs = append(errs, fmt.Errorf("guest %s: %w", g.name, err))
		}
	}
	return errors.Join(errs...)
}

// guestStatus prints one guest's agent status.
func guestStatus(ctx context.Context, t target, opts hostStatusOptions) error {
	_, sess, err := openSession(ctx, t, opts.agentFlags)
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
