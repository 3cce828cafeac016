package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"time"

	"github.com/spf13/cobra"

	"github.com/vtrace/vtrace/host/collect"
	"github.com/vtrace/vtrace/host/control"
	"github.com/vtrace/vtrace/host/fifo"
	"github.com/vtrace/vtrace/host/session"
	"github.com/vtrace/vtrace/host/tracedat"
	"github.com/vtrace/vtrace/internal/sys"
)

// target is the FIFO directory a host command works on: a domain's
// (under fifo.DefaultBase) or one given with --dir.
type target struct {
	domain string
	dir    string
}

func (t *target) addFlags(cmd *cobra.Command) {
	cmd.Flags().StringVar(&t.dir, "dir", "", "FIFO directory (instead of a domain's "+fifo.DefaultBase+"/<domain>)")
}

func (t *target) fill(args []string) {
	if len(args) == 1 {
		t.domain = args[0]
	}
}

// resolve returns the FIFO directory, insisting on exactly one of a domain
// and --dir.
func (t target) resolve() (string, error) {
	switch {
	case t.domain != "" && t.dir != "":
		return "", usageError{errors.New("give a domain or --dir, not both")}
	case t.dir != "":
		return t.dir, nil
	case t.domain == "":
		return "", usageError{errors.New("give a domain or --dir DIR")}
	}
	dir, err := fifo.DomainDir(fifo.DefaultBase, t.domain)
	if err != nil {
		return "", usageError{err}
	}
	return dir, nil
}

// agentFlags are how a host command reaches the agent.
type agentFlags struct {
	timeout   time.Duration
	handshake time.Duration
}

func (a *agentFlags) addFlags(cmd *cobra.Command, timeoutHelp string) {
	cmd.Flags().DurationVar(&a.timeout, "timeout", control.DefaultTimeout, timeoutHelp)
	cmd.Flags().DurationVar(&a.handshake, "handshake-timeout", session.DefaultHandshakeTimeout,
		"how long to wait for the agent's answer to the handshake before using the seed's bare orders")
}

func (a agentFlags) check() error {
	if a.timeout <= 0 || a.handshake <= 0 {
		return usageError{fmt.Errorf("check --timeout %v and --handshake-timeout %v: must be positive", a.timeout, a.handshake)}
	}
	return nil
}

func (a agentFlags) options() session.Options {
	return session.Options{OpenTimeout: a.timeout, HandshakeTimeout: a.handshake, ReplyTimeout: a.timeout, HostVersion: version}
}

// addSettingsFlags adds the recording's settings (issue 6) to cmd.
func addSettingsFlags(cmd *cobra.Command, f *session.SettingsFlags) {
	fl := cmd.Flags()
	fl.StringSliceVar(&f.Events, "events", nil, "events to record: system or system:event, comma separated or repeated (as trace-cmd -e)")
	fl.StringArrayVar(&f.Filters, "filter", nil, "filter EVENT=EXPR, written to the event's filter file (repeatable)")
	fl.StringVar(&f.BufferSize, "buffer-size", "", "ring buffer per CPU: KiB, or with a K, M or G suffix")
	fl.StringVar(&f.Clock, "clock", "", "trace clock (local, global, mono, x86-tsc...)")
	fl.StringVar(&f.Instance, "instance", "", "ftrace instance the agent records in (default: its own)")
}

type hostOrderOptions struct {
	target
	agentFlags
	order    control.Order
	settings session.SettingsFlags
	out      io.Writer
	log      io.Writer
}

func newHostStartCmd() *cobra.Command { return newHostOrderCmd(control.Start) }
func newHostStopCmd() *cobra.Command  { return newHostOrderCmd(control.Stop) }

func newHostOrderCmd(order control.Order) *cobra.Command {
	opts := hostOrderOptions{order: order}
	short := map[control.Order]string{
		control.Start: "Tell the guest agent to start recording",
		control.Stop:  "Tell the guest agent to stop recording",
	}[order]
	cmd := &cobra.Command{
		Use:   order.String() + " [<domain> | --dir DIR]",
		Short: short,
		Long: short + `.

A vtrace agent answers the handshake on DIR/agent-ctl-path.out and confirms:
start applies the settings (or names what was wrong), stop returns once the
agent pushed its last pages and prints its per-CPU counters. An agent that
does not answer within --handshake-timeout (the kernel's C agent) gets the
seed's bare order in DIR/agent-ctl-path.in, which has no acknowledgement:
success then means the order went into the FIFO qemu holds open.`,
		Args: cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			opts.fill(args)
			opts.out, opts.log = cmd.OutOrStdout(), cmd.ErrOrStderr()
			return runHostOrder(cmd.Context(), opts)
		},
	}
	opts.target.addFlags(cmd)
	opts.agentFlags.addFlags(cmd, "how long to wait for a reader of the control FIFO, and for the agent's reply")
	if order == control.Start {
		addSettingsFlags(cmd, &opts.settings)
	}
	return cmd
}

func runHostOrder(ctx context.Context, opts hostOrderOptions) error {
	dir, err := opts.resolve()
	if err != nil {
		return err
	}
	if err := opts.agentFlags.check(); err != nil {
		return err
	}
	settings, err := opts.settings.Settings()
	if err != nil {
		return usageError{err}
	}
	sess, err := session.Open(ctx, dir, opts.options())
	if err != nil {
		return err
	}
	defer sess.Close()
	if sess.Seed() && settings.IsZero() {
		fmt.Fprintln(opts.log, sess.SeedNotice())
	}
	if opts.order == control.Start {
		if err := sess.Start(ctx, settings); err != nil {
			return err
		}
		if sess.Seed() {
			fmt.Fprintf(opts.out, "sent the start order to %s\n", control.Path(dir))
			return nil
		}
		fmt.Fprintf(opts.out, "the agent is recording: settings %s\n", session.Describe(settings))
		return nil
	}
	reply, err := sess.Stop(ctx, opts.timeout)
	if err != nil {
		if !sess.Seed() && errors.Is(err, session.ErrTimeout) {
			err = fmt.Errorf("%w: the agent may still be pushing pages nobody reads: is a collector running?", err)
		}
		return err
	}
	if sess.Seed() {
		fmt.Fprintf(opts.out, "sent the stop order to %s\n", control.Path(dir))
		return nil
	}
	fmt.Fprintln(opts.out, "the agent stopped recording; its final counters:")
	return session.WriteStats(opts.out, reply.CPUs)
}

type hostCollectOptions struct {
	target
	cfg      collect.Config
	settings session.SettingsFlags
	pageSet  bool // --page-size given: it wins over the agent's
	quiet    bool
	format   string // --format of OUT/trace.dat
	compress string // --compress of OUT/trace.dat
	out      io.Writer
}

func newHostCollectCmd() *cobra.Command {
	var opts hostCollectOptions
	cmd := &cobra.Command{
		Use:   "collect -o OUTDIR [<domain> | --dir DIR]",
		Short: "Collect the per-CPU streams into a capture directory",
		Long: `Collect every DIR/trace-path-cpuN.out into OUTDIR/cpuN.raw, a file of whole
ring-buffer pages per CPU, until SIGINT, SIGTERM or --duration; then drain the
FIFOs, fsync, and print a per-CPU summary from the page reader.

With --start, collect talks to the agent: a vtrace agent sends the guest's
metadata (OUT/meta), applies --events and the other settings, reports its
per-CPU counters (live, and at the end: lost events are warned about), and
collect writes OUT/trace.dat for trace-cmd and KernelShark (--format v6, the
default, or v7; --compress zstd compresses a v7 file). An agent that does not
answer the handshake gets the seed's bare orders: raw pages only.`,
		Args: cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			opts.fill(args)
			opts.out = cmd.OutOrStdout()
			opts.cfg.Log = cmd.ErrOrStderr()
			opts.pageSet = cmd.Flags().Changed("page-size")
			return runHostCollect(cmd.Context(), opts)
		},
	}
	opts.addFlags(cmd)
	f := cmd.Flags()
	f.StringVarP(&opts.cfg.Out, "output", "o", "", "capture directory (made if missing)")
	f.DurationVar(&opts.cfg.Duration, "duration", 0, "stop after this long (default: at SIGINT or SIGTERM)")
	f.BoolVar(&opts.cfg.Start, "start", false, "send the start order once every FIFO is open, and the stop order at the end")
	f.BoolVar(&opts.cfg.Force, "force", false, "replace an earlier capture in OUTDIR")
	f.IntVar(&opts.cfg.PageSize, "page-size", collect.DefaultPageSize, "the guest's ring-buffer page size (default: the agent's, else 4096)")
	f.DurationVar(&opts.cfg.OrderTimeout, "timeout", control.DefaultTimeout, "with --start, how long to wait for a reader of the control FIFO, and for each reply")
	f.DurationVar(&opts.cfg.HandshakeTimeout, "handshake-timeout", session.DefaultHandshakeTimeout, "with --start, how long to wait for the agent's answer to the handshake")
	addSettingsFlags(cmd, &opts.settings)
	f.DurationVar(&opts.cfg.Settle, "settle", collect.DefaultSettle, "with --start, how long the streams must stay quiet after the stop order")
	f.DurationVar(&opts.cfg.DrainTimeout, "drain-timeout", collect.DefaultDrainTimeout, "bound on the drain at the end")
	f.BoolVarP(&opts.quiet, "quiet", "q", false, "no progress line")
	f.StringVar(&opts.format, "format", "", "OUT/trace.dat version: v6 (default) or v7")
	f.StringVar(&opts.compress, "compress", "", "compression of a v7 OUT/trace.dat: none (default) or zstd")
	return cmd
}

func runHostCollect(ctx context.Context, opts hostCollectOptions) error {
	dir, err := opts.resolve()
	if err != nil {
		return err
	}
	cfg := opts.cfg
	cfg.Dir = dir
	if cfg.Out == "" {
		return usageError{errors.New("give the capture directory with -o OUTDIR")}
	}
	if !opts.pageSet {
		cfg.PageSize = 0 // the agent's, when one answers
	} else if cfg.PageSize <= 0 {
		return usageError{fmt.Errorf("check --page-size %d: must be positive", cfg.PageSize)}
	}
	if cfg.Settings, err = opts.settings.Settings(); err != nil {
		return usageError{err}
	}
	if cfg.TraceDatOptions.Format, cfg.TraceDatOptions.Compression, err = tracedat.ParseFormat(opts.format, opts.compress); err != nil {
		return usageError{err}
	}
	if !cfg.Start && !cfg.Settings.IsZero() {
		return usageError{errors.New("check the recording's settings: --events, --filter, --buffer-size, --clock and --instance need --start")}
	}
	for name, d := range map[string]time.Duration{"--duration": cfg.Duration, "--timeout": cfg.OrderTimeout, "--handshake-timeout": cfg.HandshakeTimeout,
		"--settle": cfg.Settle, "--drain-timeout": cfg.DrainTimeout} {
		if d < 0 {
			return usageError{fmt.Errorf("check %s %v: must not be negative", name, d)}
		}
	}
	if !opts.quiet && sys.IsTerminal(int(os.Stderr.Fd())) {
		cfg.Progress = os.Stderr
	}
	sum, err := collect.Run(ctx, cfg)
	if len(sum.CPUs) > 0 {
		if werr := sum.Write(opts.out); werr != nil && err == nil {
			err = fmt.Errorf("print summary: %w", werr)
		}
	}
	return err
}
