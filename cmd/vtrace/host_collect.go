package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/vtrace/vtrace/host/collect"
	"github.com/vtrace/vtrace/host/orders"
	"github.com/vtrace/vtrace/host/session"
	"github.com/vtrace/vtrace/host/tracedat"
	"github.com/vtrace/vtrace/internal/sys"
)

type hostCollectOptions struct {
	guests
	cfg      collect.Config
	settings settingsFlags
	timeline timelineFlags
	pageSet  bool // --page-size given: it wins over the agent's
	quiet    bool
	format   string // --format of OUT/trace.dat
	compress string // --compress of OUT/trace.dat
	out      io.Writer
}

func newHostCollectCmd() *cobra.Command {
	var opts hostCollectOptions
	cmd := &cobra.Command{
		Use:   "collect -o OUTDIR [<domain>... | --dir [NAME=]DIR...]",
		Short: "Collect the per-CPU streams into a capture directory",
		Long: `Collect every DIR/trace-path-cpuN.out into OUTDIR/cpuN.raw, a file of whole
ring-buffer pages per CPU, until SIGINT, SIGTERM or --duration; then drain the
FIFOs, fsync, and print a per-CPU summary from the page reader.

With --start, collect talks to the agent: a vtrace agent sends the guest's
metadata (OUT/meta), applies --events and the other settings, reports its
per-CPU counters (live, and at the end: lost events are warned about), and
collect writes OUT/trace.dat for trace-cmd and KernelShark (--format v6, the
default, or v7; --compress zstd compresses a v7 file). An agent that does not
answer the handshake (the kernel's C agent) gets the line protocol's bare
orders: raw pages only.

With --host-events, collect also records the host's own events (in an
ftrace instance of its own) into OUT/host.dat, and places both files on one
timeline: clock probes over the control port at the start, every
--sync-interval and at the stop fit the offset and drift between the two
trace clocks (OUT/clock.json), so that
  trace-cmd report -i OUT/host.dat -i OUT/trace.dat
and kernelshark OUT/host.dat -a OUT/trace.dat show them merged. host.dat maps
each vCPU to the qemu thread that runs it (from libvirt for a domain, from
--qmp SOCKET otherwise).

Several guests at once: give several domains, or --dir more than once
(NAME=DIR names a guest, else the directory's base name names it). Each
guest's capture goes to OUTDIR/NAME, exactly as a single guest's goes to
OUTDIR; the start orders go out together (their spread is reported), and
--duration, SIGINT and SIGTERM end every guest's capture. With --host-events,
OUTDIR/host.dat holds the host's events once, with a GUEST option per guest:
  trace-cmd report -i OUT/host.dat -i OUT/NAME1/trace.dat -i OUT/NAME2/trace.dat

A guest that goes away mid-capture (qemu exits, the domain stops, or the
agent stops answering: a guest kernel that panicked) ends its own capture
within a few seconds: what arrived is kept, cut to whole pages, with the
metadata already fetched and trace.dat; the summary says when, the others
go on, and collect exits with status 1.`,
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
	f.DurationVar(&opts.cfg.OrderTimeout, "timeout", orders.DefaultTimeout, "with --start, how long to wait for a reader of the control FIFO, and for each reply")
	f.DurationVar(&opts.cfg.HandshakeTimeout, "handshake-timeout", session.DefaultHandshakeTimeout, "with --start, how long to wait for the agent's answer to the handshake")
	opts.settings.addFlags(cmd)
	opts.timeline.addFlags(cmd)
	f.DurationVar(&opts.cfg.Settle, "settle", collect.DefaultSettle, "with --start, how long the streams must stay quiet after the stop order")
	f.DurationVar(&opts.cfg.DrainTimeout, "drain-timeout", collect.DefaultDrainTimeout, "bound on the drain at the end")
	f.BoolVarP(&opts.quiet, "quiet", "q", false, "no progress line")
	f.StringVar(&opts.format, "format", "", "OUT/trace.dat version: v6 (default) or v7")
	f.StringVar(&opts.compress, "compress", "", "compression of a v7 OUT/trace.dat: none (default) or zstd")
	return cmd
}

func runHostCollect(ctx context.Context, opts hostCollectOptions) error {
	all, err := opts.resolve()
	if err != nil {
		return err
	}
	cfg := opts.cfg
	dir := all[0].dir
	cfg.Dir = dir
	if cfg.Out == "" {
		return usageError{errors.New("give the capture directory with -o OUTDIR")}
	}
	if !opts.pageSet {
		cfg.PageSize = 0 // the agent's, when one answers
	} else if cfg.PageSize <= 0 {
		return usageError{fmt.Errorf("check --page-size %d: must be positive", cfg.PageSize)}
	}
	if cfg.Settings, err = opts.settings.settings(); err != nil {
		return err
	}
	if cfg.TraceDatOptions.Format, cfg.TraceDatOptions.Compression, err = tracedat.ParseFormat(opts.format, opts.compress); err != nil {
		return usageError{err}
	}
	if !cfg.Start && (!cfg.Settings.IsZero() || cfg.Settings.LatencyMS > 0) {
		return usageError{errors.New("check the recording's settings: --events, --filter, --buffer-size, --subbuf-size, --clock, --instance and --latency need --start")}
	}
	if cfg.Timeline, err = opts.timeline.timeline(all[0].target(), all[0].name, dir, cfg.Settings.Clock, cfg.Start); err != nil {
		return err
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
	if len(all) > 1 {
		return runHostCollectGuests(ctx, opts, cfg, all)
	}
	if all[0].domain != "" {
		alive, done := domainAlive(opts.timeline.uri, all[0].domain)
		defer done()
		cfg.Alive = alive
	}
	sum, err := collect.Run(ctx, cfg)
	err = flagAdvice(err, dir)
	if len(sum.CPUs) > 0 {
		if werr := sum.Write(opts.out); werr != nil && err == nil {
			err = fmt.Errorf("print summary: %w", werr)
		}
	}
	return err
}

// runHostCollectGuests collects from several guests into OUT/NAME each.
func runHostCollectGuests(ctx context.Context, opts hostCollectOptions, cfg collect.Config, all []guestDir) error {
	var targets []collect.Target
	for _, q := range opts.timeline.qmp {
		if n, _, ok := strings.Cut(q, "="); !ok || strings.Contains(n, "/") {
			return usageError{fmt.Errorf("check --qmp %s: with several guests, name each guest's socket: --qmp NAME=SOCKET", q)}
		}
	}
	for _, g := range all {
		if g.name == collect.HostDir || g.name == collect.MetaDir {
			return usageError{fmt.Errorf("check guest name %q: the capture uses OUT/%s for itself; name the guest with NAME=DIR", g.name, g.name)}
		}
	}
	for _, g := range all {
		t := collect.Target{Name: g.name, Dir: g.dir}
		if g.domain != "" {
			alive, done := domainAlive(opts.timeline.uri, g.domain)
			defer done()
			t.Alive = alive
		}
		if cfg.Timeline != nil {
			tl, err := opts.timeline.timeline(g.target(), g.name, g.dir, cfg.Settings.Clock, cfg.Start)
			if err != nil {
				return err
			}
			t.VCPUs = tl.VCPUs
		}
		targets = append(targets, t)
	}
	ms, err := collect.RunGuests(ctx, cfg, targets)
	err = flagAdvice(err, all[0].dir)
	if len(ms.Guests) > 0 {
		if werr := ms.Write(opts.out); werr != nil && err == nil {
			err = fmt.Errorf("print summary: %w", werr)
		}
	}
	return err
}
