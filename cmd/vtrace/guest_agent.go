package main

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/spf13/cobra"

	"github.com/vtrace/vtrace/guest"
	"github.com/vtrace/vtrace/internal/sys"
)

type guestAgentOptions struct {
	stdout        bool
	pipeSize      sizeValue // bytes
	tracefs       string
	portsDir      string
	cpus          cpuListValue // nil: every online CPU
	verbose       bool
	drainTimeout  time.Duration
	instance      string
	bufferPercent int
	latency       time.Duration
}

func newGuestAgentCmd() *cobra.Command {
	opts := guestAgentOptions{pipeSize: guest.DefaultPipeSize}
	cmd := &cobra.Command{
		Use:   "agent",
		Short: "Stream each CPU's ring-buffer pages to the host",
		Long: `Stream each CPU's ftrace ring-buffer pages to the host through the
virtio-serial ports trace-path-cpuN, on the host's orders from the port
agent-ctl-path: the framed protocol of docs/protocol.md (handshake,
metadata, settings, stats), or the line protocol of the kernel's C agent,
"1" (start) and "0" (stop).
When the host chooses events, filters, buffer size or clock, the agent
records in its own ftrace instance (--instance) and removes it afterwards.
A stop sends everything recorded so far, including each CPU's last partly
filled page. SIGINT or SIGTERM stops the same way and exits; a second one
exits at once.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return runGuestAgent(cmd.Context(), opts)
		},
	}
	f := cmd.Flags()
	f.BoolVarP(&opts.stdout, "stdout", "o", false, "write every CPU's pages to standard output as cpustream records")
	f.VarP(&opts.pipeSize, "pipe-size", "s", "each CPU's pipe in bytes, with an optional K, M or G suffix; 64K to /proc/sys/fs/pipe-max-size, rounded up to whole pages")
	f.StringVar(&opts.tracefs, "tracefs", "", "tracefs directory or ftrace instance (default: the mounted tracefs)")
	f.StringVar(&opts.portsDir, "ports-dir", guest.DefaultPortsDir, "directory of the ports, or of the host's .in/.out FIFOs")
	f.Var(&opts.cpus, "cpus", "CPUs to stream, e.g. 0-3,5 (default: every online CPU)")
	f.BoolVar(&opts.verbose, "verbose", false, "log per-CPU progress")
	f.DurationVar(&opts.drainTimeout, "drain-timeout", 10*time.Second, "at exit, give up sending what is left after this long (0: never)")
	f.StringVar(&opts.instance, "instance", guest.DefaultInstance, "ftrace instance to record in when the host chooses events (a single name)")
	f.DurationVar(&opts.latency, "latency", guest.DefaultLatency, "longest an event recorded waits in the guest before it is sent (0: no bound; the host may ask for another)")
	f.IntVar(&opts.bufferPercent, "buffer-percent", guest.DefaultBufferPercent, "buffer_percent while recording: how full a CPU's buffer gets before the agent is woken (1-100; -1 leaves it alone)")
	return cmd
}

func runGuestAgent(ctx context.Context, opts guestAgentOptions) error {
	if opts.bufferPercent > 100 || opts.bufferPercent < -1 || opts.bufferPercent == 0 {
		return usageError{fmt.Errorf("check --buffer-percent %d: want 1 to 100, or -1", opts.bufferPercent)}
	}
	if opts.latency < 0 {
		return usageError{fmt.Errorf("check --latency %v: must not be negative", opts.latency)}
	}
	latency := opts.latency
	if latency == 0 {
		latency = -1 // guest.Config: no bound
	}
	max, err := sys.PipeMaxSize()
	if err != nil {
		return err
	}
	pipe, err := pipeSize(uint64(opts.pipeSize), max, sys.PageSize())
	if err != nil {
		return usageError{fmt.Errorf("check --pipe-size %v: %w", &opts.pipeSize, err)}
	}
	cfg := guest.Config{Tracefs: opts.tracefs, PortsDir: opts.portsDir, CPUs: opts.cpus, PipeSize: pipe,
		DrainTimeout: opts.drainTimeout, Instance: opts.instance, BufferPercent: opts.bufferPercent, Latency: latency, Version: version}
	if opts.stdout {
		cfg.Stdout = os.Stdout
	}
	level := slog.LevelWarn
	if opts.verbose {
		level = slog.LevelDebug
	}
	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: level}))

	// The first signal ends ctx (main's NotifyContext): stop and drain. A
	// second one gives up the drain.
	sigs := make(chan os.Signal, 2)
	signal.Notify(sigs, os.Interrupt, syscall.SIGTERM)
	defer signal.Stop(sigs)
	abort := make(chan struct{})
	go func() {
		<-ctx.Done()
		for n := 0; n < 2; n++ { // the first is the one that ended ctx
			if _, ok := <-sigs; !ok {
				return
			}
		}
		close(abort)
	}()
	cfg.Abort = abort
	return guest.Run(ctx, cfg, log)
}
