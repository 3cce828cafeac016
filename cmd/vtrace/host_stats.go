package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"

	"github.com/spf13/cobra"

	"github.com/vtrace/vtrace/host/meta"
	"github.com/vtrace/vtrace/host/stats"
	"github.com/vtrace/vtrace/host/timesync"
)

type hostStatsOptions struct {
	dir      string
	meta     string
	pageSize int
	stdout   io.Writer
}

func newHostStatsCmd() *cobra.Command {
	opts := &hostStatsOptions{}
	cmd := &cobra.Command{
		Use:   "stats DIR",
		Short: "Count a capture's events per CPU and per event name",
		Long: `Stats reads the cpuN.raw files of capture directory DIR and prints, per CPU
and per event, the number of events, the first and last timestamps, and the
pages the kernel flagged for missed events. Event names come from DIR/meta
(or --meta DIR); without metadata, events are shown by id, and pages are
--page-size bytes (the guest's sub-buffer size; with metadata it comes from
its header_page). A capture made
with --host-events also gets its clock synchronisation: the offset between
the guest's and the host's trace clocks, their drift, and the uncertainty
(half the best round trip of a clock probe). DIR/host holds the host's own
events, a capture of its own.`,
		Args: oneArg("capture directory"),
		RunE: func(cmd *cobra.Command, args []string) error {
			opts.dir = args[0]
			opts.stdout = cmd.OutOrStdout()
			return runHostStats(cmd.Context(), opts)
		},
	}
	cmd.Flags().StringVar(&opts.meta, "meta", "", "metadata directory (a copy of the guest's tracefs); default DIR/meta")
	cmd.Flags().IntVar(&opts.pageSize, "page-size", 0, "the guest's ring-buffer page size in bytes, for a capture without metadata (default: the metadata's header_page, else 4096)")
	return cmd
}

func runHostStats(_ context.Context, opts *hostStatsOptions) error {
	if opts.pageSize < 0 {
		return usageError{fmt.Errorf("check --page-size %d: must be positive", opts.pageSize)}
	}
	s, _, err := meta.ForCapture(opts.dir, opts.meta)
	if errors.Is(err, meta.ErrNoMeta) && opts.meta == "" {
		s, err = nil, nil // counts by event id
	}
	if err != nil {
		return err
	}
	r, err := stats.CollectPages(opts.dir, s, opts.pageSize)
	if err != nil {
		return err
	}
	if err := r.WriteTable(opts.stdout); err != nil {
		return err
	}
	return writeClockSync(opts.stdout, opts.dir)
}

// writeClockSync prints the clock synchronisation of a capture made with
// --host-events (DIR/clock.json); a capture without one prints nothing.
func writeClockSync(w io.Writer, dir string) error {
	rec, err := timesync.Load(dir)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	fmt.Fprintln(w)
	return rec.Write(w)
}
