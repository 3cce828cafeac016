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

type hostOrderOptions struct {
	target
	order   control.Order
	timeout time.Duration
	out     io.Writer
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
		Long: short + ` by writing the seed protocol's order into DIR/agent-ctl-path.in.

The protocol has no acknowledgement: success means the order went into the
FIFO that qemu holds open, not that an agent inside the guest acted on it.`,
		Args: cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			opts.fill(args)
			opts.out = cmd.OutOrStdout()
			return runHostOrder(cmd.Context(), opts)
		},
	}
	opts.addFlags(cmd)
	cmd.Flags().DurationVar(&opts.timeout, "timeout", control.DefaultTimeout, "how long to wait for a reader of the control FIFO")
	return cmd
}

func runHostOrder(ctx context.Context, opts hostOrderOptions) error {
	dir, err := opts.resolve()
	if err != nil {
		return err
	}
	if opts.timeout <= 0 {
		return usageError{fmt.Errorf("check --timeout %v: must be positive", opts.timeout)}
	}
	if err := control.Send(ctx, dir, opts.order, opts.timeout); err != nil {
		return err
	}
	fmt.Fprintf(opts.out, "sent the %v order to %s\n", opts.order, control.Path(dir))
	return nil
}

type hostCollectOptions struct {
	target
	cfg   collect.Config
	quiet bool
	out   io.Writer
}

func newHostCollectCmd() *cobra.Command {
	var opts hostCollectOptions
	cmd := &cobra.Command{
		Use:   "collect -o OUTDIR [<domain> | --dir DIR]",
		Short: "Collect the per-CPU streams into a capture directory",
		Long: `Collect every DIR/trace-path-cpuN.out into OUTDIR/cpuN.raw, a file of whole
ring-buffer pages per CPU, until SIGINT, SIGTERM or --duration; then drain the
FIFOs, fsync, and print a per-CPU summary from the page reader.`,
		Args: cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			opts.fill(args)
			opts.out = cmd.OutOrStdout()
			return runHostCollect(cmd.Context(), opts)
		},
	}
	opts.addFlags(cmd)
	f := cmd.Flags()
	f.StringVarP(&opts.cfg.Out, "output", "o", "", "capture directory (made if missing)")
	f.DurationVar(&opts.cfg.Duration, "duration", 0, "stop after this long (default: at SIGINT or SIGTERM)")
	f.BoolVar(&opts.cfg.Start, "start", false, "send the start order once every FIFO is open, and the stop order at the end")
	f.BoolVar(&opts.cfg.Force, "force", false, "replace an earlier capture in OUTDIR")
	f.IntVar(&opts.cfg.PageSize, "page-size", collect.DefaultPageSize, "the guest's ring-buffer page size")
	f.DurationVar(&opts.cfg.OrderTimeout, "timeout", control.DefaultTimeout, "with --start, how long to wait for a reader of the control FIFO")
	f.DurationVar(&opts.cfg.Settle, "settle", collect.DefaultSettle, "with --start, how long the streams must stay quiet after the stop order")
	f.DurationVar(&opts.cfg.DrainTimeout, "drain-timeout", collect.DefaultDrainTimeout, "bound on the drain at the end")
	f.BoolVarP(&opts.quiet, "quiet", "q", false, "no progress line")
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
	if cfg.PageSize <= 0 {
		return usageError{fmt.Errorf("check --page-size %d: must be positive", cfg.PageSize)}
	}
	for name, d := range map[string]time.Duration{"--duration": cfg.Duration, "--timeout": cfg.OrderTimeout,
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
