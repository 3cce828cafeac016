package guest

// The agent's configuration and lifetime: New opens everything and starts
// the CPU goroutines, shutdown and Close end them. The control loop is in
// control.go, the order API in orders.go, a CPU's stream in stream.go.

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/vtrace/vtrace/internal/sys"
	"github.com/vtrace/vtrace/internal/textlog"
	"github.com/vtrace/vtrace/proto/channel"
	"github.com/vtrace/vtrace/proto/ringbuf"
	"github.com/vtrace/vtrace/proto/wire"
)

// DefaultPipeSize is the size of each CPU's private pipe.
const DefaultPipeSize = 1 << 20

// DefaultPortsDir is where udev links virtio-serial ports by name.
const DefaultPortsDir = "/dev/virtio-ports"

// Config says what to trace and where to send it. The zero value finds
// everything by itself.
type Config struct {
	Tracefs  string // tracefs mount point or instance directory; "" finds it
	PortsDir string // where the ports are; "" is DefaultPortsDir
	CPUs     []int  // CPUs to stream; nil means every online CPU
	PipeSize int    // bytes per CPU pipe; 0 is DefaultPipeSize

	// Stdout, when set, receives every CPU's pages as cpustream records
	// instead of the data ports. The control port is still obeyed when
	// there is one; without one streaming starts at once.
	Stdout *os.File

	// DrainTimeout bounds the final stop when Run's context ends (0: no
	// bound). Closing Abort cuts that stop short at once.
	DrainTimeout time.Duration
	Abort        <-chan struct{}

	// Latency bounds how long an event recorded waits in the ring buffer
	// before it is sent (0 is DefaultLatency; negative: no bound, events
	// below the buffer_percent watermark wait for the next stop). The
	// host's settings may ask for another.
	Latency time.Duration

	// Instance is the ftrace instance made when the host chooses what to
	// trace ("" is DefaultInstance); the host may name another.
	Instance string
	// BufferPercent bounds what is written to buffer_percent while
	// recording (the top-level value is restored afterwards): at most the
	// share of a CPU's buffer one pipe holds (see watermark). 0 is
	// DefaultBufferPercent, negative leaves it alone. (The kernel's own 0, waking the agent for
	// every event, only makes it poll with backoff.)
	BufferPercent int
	// SubbufKiB is the ring buffer's sub-buffer size, in KiB, of every
	// recording whose settings give none: written to buffer_subbuf_size_kb
	// (Linux 6.8 and later) of the agent's own instance, or of the
	// directory streamed as is, where the old value is put back at the
	// stop. 0 leaves the kernel's.
	SubbufKiB uint32
	// RTPriority runs every thread of the process under SCHED_FIFO at
	// this priority (1-99) while the agent runs, so that a workload keeping
	// a CPU busy cannot delay its wake-ups; it needs CAP_SYS_NICE, or
	// RLIMIT_RTPRIO of at least the priority. 0 leaves them to the fair
	// scheduler, with the shortest slice it grants (Linux 6.12 and later;
	// see sched.go).
	RTPriority int
	// StateDir keeps the markers of the instances the agent made; "" is
	// DefaultStateDir.
	StateDir string
	// ReplyQueue bounds the frames waiting for the host; 0 is
	// DefaultReplyQueue.
	ReplyQueue int
	// StatsEvery is the period of Stats while recording; 0 is 2 s.
	StatsEvery time.Duration
	// Version is the agent's version, told to the host.
	Version string
	// WaitPorts makes Run wait for missing virtio-serial ports instead of
	// failing (it says in its log which), start once they are all there,
	// and wait again when they go away (the host unplugged them), all
	// from the kernel's uevents: no restart, no polling. It applies to
	// ports found through /sys/class/virtio-ports, not to -o.
	WaitPorts bool
}

// withDefaults fills in what c leaves to the agent and checks the rest
// that needs no file.
func (c Config) withDefaults() (Config, error) {
	if c.Instance == "" {
		c.Instance = DefaultInstance
	}
	if !wire.ValidName(c.Instance) {
		return c, fmt.Errorf("check instance name %q: want one name of [A-Za-z0-9_.-], not . or ..", c.Instance)
	}
	if c.BufferPercent == 0 {
		c.BufferPercent = DefaultBufferPercent
	}
	if c.BufferPercent > 100 {
		return c, fmt.Errorf("check buffer percent %d: want 0 to 100 (negative: leave it alone)", c.BufferPercent)
	}
	if c.RTPriority < 0 || c.RTPriority > 99 {
		return c, fmt.Errorf("check real-time priority %d: want 1 to 99, or 0 for none", c.RTPriority)
	}
	if c.Latency == 0 {
		c.Latency = DefaultLatency
	}
	if c.PortsDir == "" {
		c.PortsDir = DefaultPortsDir
	}
	if c.PipeSize == 0 {
		c.PipeSize = DefaultPipeSize
	}
	if c.StateDir == "" {
		c.StateDir = DefaultStateDir
	}
	if c.ReplyQueue <= 0 {
		c.ReplyQueue = DefaultReplyQueue
	}
	if c.StatsEvery <= 0 {
		c.StatsEvery = 2 * time.Second
	}
	if c.Version == "" {
		c.Version = "dev"
	}
	return c, nil
}

// Agent streams the CPUs of one tracefs to the host.
type Agent struct {
	cfg     Config // with defaults
	log     *textlog.Logger
	tracefs string   // the default directory streamed (--tracefs)
	lock    *dirLock // on tracefs: no other vtrace agent streams it
	root    string   // the tracefs mount point: instances/, events/, metadata
	layout  ringbuf.Layout
	// openSink opens where a CPU's pages go (its port, or its share of
	// stdout).
	openSink func(cpu int) (sink, error)
	stdout   *stdoutStream // with Config.Stdout
	wmu      sync.Mutex
	workers  []*worker // by CPU, each one's goroutine running until it has exited; replaced, never changed, under wmu
	ctl      *os.File  // nil when there is no control port (-o only)
	ctlPath  string
	reply    *os.File // where frames to the host go; nil: nowhere
	pace     *pacer
	abort    atomic.Bool
	failed   chan error // the first fatal error of a CPU goroutine

	mu        sync.Mutex // serializes orders and guards what follows
	rec       *recording // the recording in progress; nil when idle
	last      *wire.Status
	lastCPUs  []int // the CPUs the last recording streamed (at first: the agent began with)
	closeOnce sync.Once
	closeErr  error
	// unschedule puts back the process's scheduling (sched.go) at Close.
	unschedule func() error
}

// Run builds an agent from cfg, obeys the host until ctx ends, then stops
// and closes it. With cfg.WaitPorts it first waits for the ports, and
// when they go away while it runs it stops at once (there is nowhere to
// drain to), closes the agent and waits for them again.
func Run(ctx context.Context, cfg Config, log *textlog.Logger) error {
	var w *portWatch
	var err error
	if cfg.WaitPorts && cfg.Stdout == nil {
		if w, err = openPortWatch(); err != nil {
			log.Warn("cannot watch for ports that appear later: the ports must be there now", "err", err)
		}
	}
	if w == nil {
		a, err := New(cfg, log)
		if err != nil {
			return err
		}
		defer a.Close()
		return a.Run(ctx, cfg.DrainTimeout, cfg.Abort)
	}
	defer w.close()
	cpus := cfg.CPUs
	if cpus == nil {
		if cpus, err = OnlineCPUs(); err != nil {
			return err
		}
	}
	dir := cfg.PortsDir
	if dir == "" {
		dir = DefaultPortsDir
	}
	f := portFinder{dir: dir, sysClass: sysClassPorts, dev: "/dev"}
	done := make(chan struct{})
	defer close(done)
	go func() {
		select {
		case <-ctx.Done():
			w.waker.Wake()
		case <-done:
		}
	}()
	for {
		if err := waitPorts(f, cpus, w, log); err != nil {
			if ctx.Err() != nil {
				return nil
			}
			return err
		}
		a, err := New(cfg, log)
		if err != nil {
			if ctx.Err() == nil && len(f.missing(cpus)) > 0 {
				continue // gone again before the agent could open them
			}
			return err
		}
		var gone atomic.Bool
		watched := make(chan struct{})
		go func() {
			defer close(watched)
			watchGone(f, cpus, w, func() {
				gone.Store(true)
				select {
				case a.failed <- errPortsGone:
				default:
				}
			})
		}()
		err = a.Run(ctx, cfg.DrainTimeout, cfg.Abort)
		a.Close()
		if ctx.Err() == nil {
			w.waker.Wake()
		}
		<-watched
		if ctx.Err() != nil {
			return err
		}
		w.waker.Clear()
		if gone.Load() || (err != nil && len(f.missing(cpus)) > 0) {
			log.Warn("ports went away (the host unplugged them): stopped; waiting for them again", "err", err)
			continue
		}
		return err
	}
}

// errPortsGone ends an agent whose ports the host unplugged.
var errPortsGone = errors.New("the host unplugged the ports")

// New opens tracefs, the ports and the control port, and starts one idle
// goroutine per CPU. log may be nil: a nil *textlog.Logger writes nothing.
func New(cfg Config, log *textlog.Logger) (_ *Agent, err error) {
	if cfg, err = cfg.withDefaults(); err != nil {
		return nil, err
	}
	unschedule, err := scheduleProcess(agentSched(cfg.RTPriority))
	switch {
	case err != nil && cfg.RTPriority > 0:
		return nil, fmt.Errorf("run at real-time priority %d (it needs CAP_SYS_NICE, or RLIMIT_RTPRIO of at least %[1]d; under cgroup v1's RT_GROUP_SCHED, cpu.rt_runtime_us above 0): %w", cfg.RTPriority, err)
	case err != nil:
		log.Warn("cannot shorten the threads' time slice: a busy CPU may delay the agent's wake-ups", "err", err)
	}
	a := &Agent{cfg: cfg, log: log, failed: make(chan error, 1), pace: newPacer(log), unschedule: unschedule}
	defer func() {
		if err != nil {
			a.Close()
		}
	}()
	if a.tracefs, err = FindTracefs(cfg.Tracefs); err != nil {
		return nil, err
	}
	a.tracefs = filepath.Clean(a.tracefs)
	a.root = tracefsRoot(a.tracefs)
	if a.lock, err = lockDir(a.tracefs); err != nil {
		if errors.Is(err, errLocked) {
			err = fmt.Errorf("%w: stop it, or give this agent another ring buffer (--tracefs an instance)", err)
		}
		return nil, err
	}
	if a.layout, err = ringbuf.LayoutFromTracefs(a.tracefs); err != nil {
		return nil, fmt.Errorf("read ring-buffer page layout: %w", err)
	}

	cpus := cfg.CPUs
	if cpus == nil {
		if cpus, err = OnlineCPUs(); err != nil {
			return nil, err
		}
	}
	if cfg.PipeSize < a.layout.PageSize {
		return nil, fmt.Errorf("check pipe size %d: smaller than a ring-buffer page (%d bytes)", cfg.PipeSize, a.layout.PageSize)
	}
	finder := portFinder{dir: cfg.PortsDir, sysClass: sysClassPorts, dev: "/dev"}
	if a.ctlPath, err = finder.find([]string{channel.Ctl}, true); err != nil && cfg.Stdout == nil {
		return nil, err
	}
	if err == nil {
		if a.ctl, err = os.OpenFile(a.ctlPath, os.O_RDWR|sys.ONonblock, 0); err != nil {
			return nil, fmt.Errorf("open control port: %w", err)
		}
		if err = a.openReply(); err != nil {
			return nil, err
		}
	}
	var stdout *stdoutStream
	if cfg.Stdout != nil {
		stdout = newStdoutStream(cfg.Stdout, a.layout.PageSize, log)
		a.stdout = stdout
	}
	a.openSink = func(cpu int) (sink, error) {
		if stdout != nil {
			return stdout.forCPU(cpu)
		}
		path, err := finder.find(dataPortNames(cpu), false)
		if err != nil {
			return nil, err
		}
		p, err := openPort(cpu, path)
		if err != nil {
			return nil, err
		}
		log.Debug("port", "cpu", cpu, "path", path)
		return p, nil
	}
	// The CPUs there are now (or --cpus) must all be streamable; one that
	// comes online later and cannot be is reported then.
	for _, cpu := range cpus {
		if _, err := a.addWorker(cpu); err != nil {
			return nil, err
		}
	}
	if err := a.checkSubbuf(cfg.SubbufKiB); err != nil {
		return nil, fmt.Errorf("check --subbuf-size: %w", err)
	}
	a.mu.Lock()
	a.logChange(a.plan(true))
	a.mu.Unlock()
	log.Debug("agent ready", "tracefs", a.tracefs, "cpus", FormatCPUList(cpus), "page", a.layout.PageSize,
		"pipe", cfg.PipeSize, "control", a.ctlPath)
	return a, nil
}

// shutdown stops every CPU as Stop does, bounded by drainTimeout (0: no
// bound) and abort, and closes the agent. It returns cause, else what
// ended the stop.
func (a *Agent) shutdown(cause error, drainTimeout time.Duration, abort <-chan struct{}) error {
	if a.ctl != nil {
		a.ctl.Close() // ends readControl's Read
	}
	if err := a.quit(drainTimeout, abort); cause == nil {
		cause = err
	}
	select {
	case err := <-a.failed:
		if cause == nil {
			cause = err
		}
	default:
	}
	a.Close() // logs what it could not undo
	return cause
}

// quit ends every CPU goroutine, each after a stop as Stop does (the
// agent's instance frozen first), and returns once all have ended. An abort
// makes them give up at once: one already under way, timeout passing (0: no
// timeout; the error says so, naming each CPU that had not finished and
// what it left behind) or abort closing (logged the same way).
func (a *Agent) quit(timeout time.Duration, abort <-chan struct{}) error {
	a.mu.Lock()
	a.freeze(a.rec)
	workers := a.allWorkers()
	for _, w := range workers {
		w.tell(nil, order{kind: orderQuit, done: make(chan error, 1)})
	}
	a.mu.Unlock()
	var expired <-chan time.Time
	if timeout > 0 {
		t := time.NewTimer(timeout)
		defer t.Stop()
		expired = t.C
	}
	gaveUp, cut := false, false
	for _, w := range workers {
		select {
		case <-w.exited:
			continue
		case <-expired:
			gaveUp = true
		case <-abort:
			cut = true
		}
		break
	}
	var unfinished []*worker
	for _, w := range workers {
		select {
		case <-w.exited:
		default:
			unfinished = append(unfinished, w)
		}
	}
	if len(unfinished) == 0 {
		return nil
	}
	a.abortAll()
	for _, w := range workers {
		<-w.exited
	}
	left := leftBehind(unfinished)
	switch {
	case gaveUp:
		return fmt.Errorf("stop: gave up after %v: the host is not reading %s", timeout, left)
	case cut:
		a.log.Warn("stop cut short: pages left behind", "left", left)
	}
	return nil
}

// leftBehind says, for CPUs whose stop did not finish (their goroutines
// have ended), what stayed in the guest: whole pages in the agent's pipe,
// and the events in the ring buffer (per_cpu/cpuN/stats "entries").
func leftBehind(ws []*worker) string {
	var parts []string
	for _, w := range ws {
		events := "?"
		b, err := readSmall(filepath.Join(filepath.Dir(w.tracePath), "stats"), maxStatsFile)
		if err == nil {
			if st, err := ParseCPUStats(w.cpu, string(b)); err == nil {
				events = strconv.FormatUint(st.Entries, 10)
			}
		}
		parts = append(parts, fmt.Sprintf("cpu %d (left behind: %d pages of %d bytes in the agent's pipe, %s events in the ring buffer)",
			w.cpu, w.inPipe/w.page, w.page, events))
	}
	return strings.Join(parts, ", ")
}

// abortAll makes every CPU give up what it is waiting for.
func (a *Agent) abortAll() {
	a.abort.Store(true)
	for _, w := range a.allWorkers() {
		w.waker.Wake()
	}
}

// Close stops the CPU goroutines at once (nothing more is sent), closes
// every file and removes the recording's instance, if any. It returns
// what could not be closed or undone; calling it again returns the same.
func (a *Agent) Close() error {
	a.closeOnce.Do(func() {
		var errs []error
		defer func() {
			if err := a.unschedule(); err != nil {
				a.closeErr = errors.Join(a.closeErr, err)
			}
		}()
		if a.ctl != nil {
			if err := a.ctl.Close(); err != nil && !errors.Is(err, os.ErrClosed) {
				errs = append(errs, fmt.Errorf("close control port: %w", err))
			}
		}
		if a.reply != nil && a.reply != a.ctl {
			if err := a.reply.Close(); err != nil {
				errs = append(errs, fmt.Errorf("close control port's way back: %w", err))
			}
		}
		a.abortAll()
		a.quit(0, nil)
		for _, w := range a.allWorkers() {
			errs = append(errs, w.close())
		}
		// The CPU goroutines have let go of every trace file: the
		// recording's instance can go.
		a.mu.Lock()
		if a.rec != nil {
			errs = append(errs, a.finish(a.rec))
			a.rec = nil
		}
		a.mu.Unlock()
		errs = append(errs, a.lock.Close())
		a.closeErr = errors.Join(errs...)
	})
	return a.closeErr
}

// tracefsRoot is the mount point of the tracefs that dir (a root, or an
// instance under instances/) belongs to.
func tracefsRoot(dir string) string {
	dir = filepath.Clean(dir)
	if filepath.Base(filepath.Dir(dir)) == "instances" {
		return filepath.Dir(filepath.Dir(dir))
	}
	return dir
}

// openReply finds where frames to the host go: on a virtio port, the port
// itself; in loopback (the control port is the host's NAME.in FIFO), the
// NAME.out FIFO beside it. A lone FIFO that is not such a pair has no way
// back: frames are dropped.
func (a *Agent) openReply() error {
	st, err := a.ctl.Stat()
	if err != nil {
		return fmt.Errorf("stat control port: %w", err)
	}
	if st.Mode()&os.ModeNamedPipe == 0 {
		a.reply = a.ctl
		return nil
	}
	base, ok := strings.CutSuffix(a.ctlPath, ".in")
	if !ok || !exists(base+".out") {
		a.log.Warn("control port is a lone FIFO: the agent cannot answer the host", "path", a.ctlPath)
		return nil
	}
	if a.reply, err = os.OpenFile(base+".out", os.O_RDWR|sys.ONonblock, 0); err != nil {
		return fmt.Errorf("open control port's way back: %w", err)
	}
	return nil
}

func (a *Agent) replyPath() string {
	if a.reply == nil {
		return ""
	}
	return a.reply.Name()
}

// dirInUse is the tracefs directory streamed now, or that would be.
func (a *Agent) dirInUse() string {
	if a.rec != nil {
		return a.rec.dir
	}
	return a.tracefs
}
