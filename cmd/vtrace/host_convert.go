package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"

	"github.com/spf13/cobra"

	"github.com/vtrace/vtrace/host/collect"
	"github.com/vtrace/vtrace/host/meta"
	"github.com/vtrace/vtrace/host/tracedat"
)

type hostConvertOptions struct {
	dir      string // capture directory
	meta     string // metadata directory, "" for DIR/meta
	output   string // trace.dat path, "" for DIR/trace.dat
	format   string // --format: v6, v7 or "" (the default)
	compress string // --compress: none, zstd or ""
	force    bool
	stdout   io.Writer
	stderr   io.Writer
}

func newHostConvertCmd() *cobra.Command {
	opts := &hostConvertOptions{}
	cmd := &cobra.Command{
		Use:   "convert DIR",
		Short: "Build DIR/trace.dat (trace-cmd v6 or v7) from a capture's raw pages and metadata",
		Long: `Convert writes a trace.dat that trace-cmd report and KernelShark open, from
the cpuN.raw files of capture directory DIR and its metadata (DIR/meta). A
capture without metadata needs --meta DIR: a copy of the guest's
/sys/kernel/tracing, a metadata directory, or another capture; it is then
saved as DIR/meta for next time. Only whole pages are written, each checked
with the page reader: a page it refuses is written as an empty page and
named on standard error (CPU, page, offset, reason).

--format v6 (the default) is read by every trace-cmd and KernelShark;
--format v7 is trace-cmd 3.x's sectioned file, and --compress zstd (v7 only;
alone it selects v7) compresses it as trace-cmd record does.

A capture made with --host-events keeps its timeline: DIR/trace.dat gets
TRACEID and TIME_SHIFT from DIR/clock.json again, and DIR/host (the host's
own capture) converts with TRACEID and GUEST, for
trace-cmd report -i DIR/host/trace.dat -i DIR/trace.dat.`,
		Args: oneArg("capture directory"),
		RunE: func(cmd *cobra.Command, args []string) error {
			opts.dir = args[0]
			opts.stdout, opts.stderr = cmd.OutOrStdout(), cmd.ErrOrStderr()
			return runHostConvert(cmd.Context(), opts)
		},
	}
	cmd.Flags().StringVar(&opts.meta, "meta", "", "metadata directory (a copy of the guest's tracefs); default DIR/meta")
	cmd.Flags().StringVarP(&opts.output, "output", "o", "", "trace.dat to write (default DIR/trace.dat)")
	cmd.Flags().BoolVar(&opts.force, "force", false, "replace an existing output file")
	cmd.Flags().StringVar(&opts.format, "format", "", "trace.dat version: v6 (default) or v7")
	cmd.Flags().StringVar(&opts.compress, "compress", "", "compression of a v7 file: none (default) or zstd")
	return cmd
}

func runHostConvert(ctx context.Context, opts *hostConvertOptions) error {
	format, compress, err := tracedat.ParseFormat(opts.format, opts.compress)
	if err != nil {
		return usageError{err}
	}
	s, from, err := meta.ForCapture(opts.dir, opts.meta)
	if err != nil {
		return err
	}
	cpus, err := tracedat.CaptureCPUs(opts.dir)
	if err != nil {
		return err
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	saved := filepath.Join(opts.dir, "meta")
	if opts.meta != "" {
		if _, err := os.Stat(saved); errors.Is(err, os.ErrNotExist) {
			if err := meta.Save(s, saved); err != nil {
				return err
			}
			fmt.Fprintf(opts.stderr, "saved the metadata of %s as %s\n", from, saved)
		}
	}
	out := opts.output
	if out == "" {
		out = filepath.Join(opts.dir, "trace.dat")
	}
	timeline, err := collect.TimelineOptions(opts.dir)
	if err != nil {
		return err
	}
	res, err := tracedat.WriteFile(out, s, cpus, tracedat.Options{Format: format, Compression: compress, Timeline: timeline}, opts.force)
	if err != nil {
		return err
	}
	if err := res.WriteBadPages(opts.stderr); err != nil {
		return err
	}
	var pages, stored int64
	for _, c := range res.CPUs {
		if c.Dropped > 0 {
			fmt.Fprintf(opts.stderr, "cpu%d.raw: left out %d trailing bytes (not a whole page)\n", c.CPU, c.Dropped)
		}
		pages += c.Size
		stored += c.Stored
	}
	kind := res.Format.String()
	if res.Compression != tracedat.CompressNone {
		kind += ", " + string(res.Compression) + fmt.Sprintf(": pages stored in %.1f MiB", float64(stored)/(1<<20))
	}
	fmt.Fprintf(opts.stdout, "wrote %s (%s): %d CPUs, %.1f MiB of pages, %.1f MiB in all\nread it with: trace-cmd report -i %s\n",
		out, kind, len(res.CPUs), float64(pages)/(1<<20), float64(res.Size)/(1<<20), out)
	return nil
}
