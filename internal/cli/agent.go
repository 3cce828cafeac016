package cli

import (
	"context"
	"io"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/vtrace/vtrace/guest"
	"github.com/vtrace/vtrace/internal/sys"
	"github.com/vtrace/vtrace/internal/textlog"
)

// AgentUse, AgentShort and AgentLong describe `vtrace guest agent` in both
// binaries' help.
const (
	AgentUse   = "agent"
	AgentShort = "Stream each CPU's ring-buffer pages to the host"
	AgentLong  = `Stream each CPU's ftrace ring-buffer pages to the host through the
virtio-serial ports trace-path-cpuN, on the host's orders from the port
agent-ctl-path: the framed protocol of docs/protocol.md (handshake,
metadata, settings, stats), or the line protocol of the kernel's C agent,
"1" (start) and "0" (stop).
When the host chooses events, filters, buffer size or clock, the agent
records in its own ftrace instance (--instance) and removes it afterwards.
A stop sends everything recorded so far, including each CPU's last partly
filled page. SIGINT or SIGTERM stops the same way and exits; a second one
exits at once.`
)

// AgentOptions are the flags of `vtrace guest agent`.
type AgentOptions struct {
	Stdout        bool
	PipeSize      Size // bytes
	PipeSizeGiven bool // on the command line: too large is an error, not a fallback
	Tracefs       string
	PortsDir      string
	CPUs          CPUList // nil: every online CPU
	Verbose       bool
	DrainTimeout  time.Duration
	Instance      string
	BufferPercent int
	SubbufSize    SubbufSize // bytes; 0: the kernel's
	WaitPorts     bool
	Latency       time.Duration // 0: no bound
	RTPriority    int           // SCHED_FIFO priority of the CPU threads; 0: none
}

// NewAgentOptions returns the agent's defaults.
func NewAgentOptions() *AgentOptions {
	return &AgentOptions{PipeSize: guest.DefaultPipeSize, PortsDir: guest.DefaultPortsDir, DrainTimeout: 10 * time.Second,
		Instance: guest.DefaultInstance, BufferPercent: guest.DefaultBufferPercent, WaitPorts: true, Latency: guest.DefaultLatency}
}

// Flags are the agent's flags, bound to o: the one list both binaries
// parse.
func (o *AgentOptions) Flags() []Flag {
	return []Flag{
		{"stdout", "o", "write every CPU's pages to standard output as cpustream records", BoolValue(&o.Stdout)},
		{"pipe-size", "s", "each CPU's pipe in bytes, with an optional K, M or G suffix; 64K to /proc/sys/fs/pipe-max-size, rounded up to whole pages; the default falls back to pipe-max-size when that is smaller", givenSize{&o.PipeSize, &o.PipeSizeGiven}},
		{"tracefs", "", "tracefs directory or ftrace instance (default: the mounted tracefs)", StringValue(&o.Tracefs)},
		{"ports-dir", "", "directory of the ports, or of the host's .in/.out FIFOs", StringValue(&o.PortsDir)},
		{"cpus", "", "CPUs to stream, e.g. 0-3,5 (default: every online CPU)", &o.CPUs},
		{"verbose", "", "log per-CPU progress", BoolValue(&o.Verbose)},
		{"wait-ports", "", "with the default --ports-dir: wait for missing ports (the log names them), and again when they go away (--wait-ports=false: fail at once)", BoolValue(&o.WaitPorts)},
		{"drain-timeout", "", "at exit, give up sending what is left after this long (0: never)", DurationValue(&o.DrainTimeout)},
		{"instance", "", "ftrace instance to record in when the host chooses events (a single name)", StringValue(&o.Instance)},
		{"subbuf-size", "", "ring-buffer sub-buffer (page) size of each recording, 4K to 1M, a power of two (Linux 6.8 and later): set in the streamed buffer at each start and put back at the stop, unless the host's settings give one", &o.SubbufSize},
		{"buffer-percent", "", "highest buffer_percent while recording (how full a CPU's buffer gets before the agent is woken): the agent writes the smaller of this and one pipe's share of the buffer (1-100; -1 leaves it alone)", IntValue(&o.BufferPercent)},
		{"latency", "", "longest an event recorded waits in the guest before it is sent (0: no bound; the host may ask for another)", DurationValue(&o.Latency)},
		{"rt-priority", "", "run the agent's threads at this real-time (SCHED_FIFO) priority, 1-99, so that a busy CPU cannot delay them (needs CAP_SYS_NICE; 0: the fair scheduler, with a short slice)", IntValue(&o.RTPriority)},
	}
}

// RunAgent runs the agent until ctx ends (the caller's first SIGINT or
// SIGTERM), then stops it losslessly; a second signal gives up the drain.
// Its log goes to stderr; with --stdout the pages go to os.Stdout, which
// must be a file or pipe the agent can splice into. version is told to the
// host. Flag values out of range are a UsageError.
func RunAgent(ctx context.Context, o AgentOptions, stderr io.Writer, version string) error {
	if o.BufferPercent > 100 || o.BufferPercent < -1 || o.BufferPercent == 0 {
		return Usagef("check --buffer-percent %d: want 1 to 100, or -1", o.BufferPercent)
	}
	if o.RTPriority < 0 || o.RTPriority > 99 {
		return Usagef("check --rt-priority %d: want 1 to 99, or 0 for none", o.RTPriority)
	}
	if o.Latency < 0 {
		return Usagef("check --latency %v: must not be negative", o.Latency)
	}
	latency := o.Latency
	if latency == 0 {
		latency = -1 // guest.Config: no bound
	}
	max, err := sys.PipeMaxSize()
	if err != nil {
		return err
	}
	pipe, note, err := AgentPipeSize(uint64(o.PipeSize), o.PipeSizeGiven, max, sys.PageSize())
	if err != nil {
		return Usagef("check --pipe-size %v: %w", &o.PipeSize, err)
	}
	cfg := guest.Config{Tracefs: o.Tracefs, PortsDir: o.PortsDir, CPUs: o.CPUs, PipeSize: pipe,
		DrainTimeout: o.DrainTimeout, Instance: o.Instance, BufferPercent: o.BufferPercent, SubbufKiB: o.SubbufSize.KiB(),
		Latency: latency, RTPriority: o.RTPriority, Version: version, WaitPorts: o.WaitPorts && o.PortsDir == guest.DefaultPortsDir}
	if o.Stdout {
		cfg.Stdout = os.Stdout
	}
	level := textlog.LevelWarn
	if o.Verbose {
		level = textlog.LevelDebug
	}
	log := textlog.New(stderr, level)
	if note != "" {
		log.Warn(note)
	}

	// The first signal ends ctx (the caller's NotifyContext): stop and
	// drain. A second one gives up the drain.
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

// CPUList is a CPU list flag in the kernel's syntax ("0-3,5"); nil: not
// given.
type CPUList []int

func (v *CPUList) Set(s string) error {
	cpus, err := guest.ParseCPUList(s)
	if err != nil {
		return err
	}
	*v = cpus
	return nil
}

func (v *CPUList) String() string { return guest.FormatCPUList(*v) }
func (v *CPUList) Type() string   { return "list" }

// givenSize is a Size flag that records whether the command line set it.
type givenSize struct {
	size  *Size
	given *bool
}

func (v givenSize) Set(s string) error {
	if err := v.size.Set(s); err != nil {
		return err
	}
	*v.given = true
	return nil
}

func (v givenSize) String() string { return v.size.String() }
func (v givenSize) Type() string   { return v.size.Type() }
