package main

import (
	"context"
	"errors"
	"io"

	"github.com/spf13/cobra"

	"github.com/vtrace/vtrace/host/meta"
	"github.com/vtrace/vtrace/host/stats"
)

type hostStatsOptions struct {
	dir    string
	meta   string
	stdout io.Writer
}

func newHostStatsCmd() *cobra.Command {
	opts := &hostStatsOptions{}
	cmd := &cobra.Command{
		Use:   "stats DIR",
		Short: "Count a capture's events per CPU and per event name",
		Long: `Stats reads the cpuN.raw files of capture directory DIR and prints, per CPU
and per event, the number of events, the first and last timestamps, and the
pages the kernel flagged for missed events. Event names come from DIR/meta
(or --meta DIR); without metadata, events are shown by id.`,
		Args: oneArg("capture directory"),
		RunE: func(cmd *cobra.Command, args []string) error {
			opts.dir = args[0]
			opts.stdout = cmd.OutOrStdout()
			return runHostStats(cmd.Context(), opts)
		},
	}
	cmd.Flags().StringVar(&opts.meta, "meta", "", "metadata directory (a copy of the guest's tracefs); default DIR/meta")
	return cmd
}

func runHostStats(_ context.Context, opts *hostStatsOptions) error {
	s, _, err := meta.ForCapture(opts.dir, opts.meta)
	if errors.Is(err, meta.ErrNoMeta) && opts.meta == "" {
		s, err = nil, nil // counts by event id
	}
	if err != nil {
		return err
	}
	r, err := stats.Collect(opts.dir, s)
	if err != nil {
		return err
	}
	return r.WriteTable(opts.stdout)
}
