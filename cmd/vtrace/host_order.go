package main

import (
	"context"
	"errors"
	"fmt"
	"io"

	"github.com/spf13/cobra"

	"github.com/vtrace/vtrace/host/orders"
	"github.com/vtrace/vtrace/host/session"
)

type hostOrderOptions struct {
	target
	agentFlags
	order    orders.Order
	settings settingsFlags
	out      io.Writer
	log      io.Writer
}

func newHostStartCmd() *cobra.Command { return newHostOrderCmd(orders.Start) }
func newHostStopCmd() *cobra.Command  { return newHostOrderCmd(orders.Stop) }

func newHostOrderCmd(order orders.Order) *cobra.Command {
	opts := hostOrderOptions{order: order}
	short := map[orders.Order]string{
		orders.Start: "Tell the guest agent to start recording",
		orders.Stop:  "Tell the guest agent to stop recording",
	}[order]
	cmd := &cobra.Command{
		Use:   order.String() + " [<domain> | --dir DIR]",
		Short: short,
		Long: short + `.

A vtrace agent answers the handshake on DIR/agent-ctl-path.out and confirms:
start applies the settings (or names what was wrong), stop returns once the
agent pushed its last pages and prints its per-CPU counters. An agent that
does not answer within --handshake-timeout (the kernel's C agent) gets the
line protocol's bare order in DIR/agent-ctl-path.in, which has no
acknowledgement: success then means the order went into the FIFO qemu holds
open.`,
		Args: cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			opts.fill(args)
			opts.out, opts.log = cmd.OutOrStdout(), cmd.ErrOrStderr()
			return runHostOrder(cmd.Context(), opts)
		},
	}
	opts.target.addFlags(cmd)
	opts.agentFlags.addFlags(cmd, "how long to wait for a reader of the control FIFO, and for the agent's reply")
	if order == orders.Start {
		opts.settings.addFlags(cmd)
	}
	return cmd
}

func runHostOrder(ctx context.Context, opts hostOrderOptions) error {
	settings, err := opts.settings.settings()
	if err != nil {
		return err
	}
	dir, sess, err := openSession(ctx, opts.target, opts.agentFlags)
	if err != nil {
		return err
	}
	defer sess.Close()
	// No answer to the handshake: the line protocol's bare orders, which
	// have no reply.
	bare := sess.LineProtocol()
	if bare && settings.IsZero() {
		fmt.Fprintln(opts.log, sess.LineProtocolNotice())
	}
	if opts.order == orders.Start {
		if err := sess.Start(ctx, settings); err != nil {
			return flagAdvice(err, dir)
		}
		if bare {
			fmt.Fprintf(opts.out, "sent the start order to %s\n", orders.Path(dir))
			return nil
		}
		fmt.Fprintf(opts.out, "the agent is recording: settings %s\n", session.Describe(settings))
		return nil
	}
	reply, err := sess.Stop(ctx, opts.timeout)
	if err != nil {
		if !bare && errors.Is(err, session.ErrTimeout) {
			err = fmt.Errorf("%w: the agent may still be pushing pages nobody reads: is a collector running?", err)
		}
		return err
	}
	if bare {
		fmt.Fprintf(opts.out, "sent the stop order to %s\n", orders.Path(dir))
		return nil
	}
	fmt.Fprintln(opts.out, "the agent stopped recording; its final counters:")
	return session.WriteStats(opts.out, reply.CPUs)
}
