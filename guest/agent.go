package guest

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/vtrace/vtrace/internal/sys"
	"github.com/vtrace/vtrace/proto/channel"
	"github.com/vtrace/vtrace/proto/control"
	"github.com/vtrace/vtrace/proto/ringbuf"
	"github.com/vtrace/vtrace/proto/tracefs"
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

	// Instance is the ftrace instance made when the host chooses what to
	// trace ("" is DefaultInstance); the host may name another.
	Instance string
	// BufferPercent is written to buffer_percent while recording (the
	// top-level value is restored afterwards): 0 is DefaultBufferPercent,
	// negative leaves it alone. (The kernel's own 0, waking the agent for
	// every event, only makes it poll with backoff.)
	BufferPercent int
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
}

// Agent streams the CPUs of one tracefs to the host.
type Agent struct {
	log     *slog.Logger
	tracefs string // the default directory streamed (--tracefs)
	root    string // the tracefs mount point: instances/, events/, metadata
	layout  ringbuf.Layout
	cpus    []int
	workers []*worker
	ctl     *os.File // nil when there is no control port (-o only)
	ctlPath string
	reply   *os.File // where frames to the host go; nil: nowhere
	abort   atomic.Bool
	failed  chan error // the first fatal error of a CPU goroutine

	instanceName  string
	bufferPercent int
	stateDir      string
	replyQueue    int
	statsEvery    time.Duration
	version       string

	mu        sync.Mutex // serializes orders and guards what follows
	rec       *recording // the recording in progress; nil when idle
	last      *wire.Status
	started   bool // the CPU goroutines run
	closeOnce sync.Once
}

// Run builds an agent from cfg, obeys the host until ctx ends, then stops
// and closes it.
func Run(ctx context.Context, cfg Config, log *slog.Logger) error {
	a, err := New(cfg, log)
	if err != nil {
		return err
	}
	defer a.Close()
	return a.Run(ctx, cfg.DrainTimeout, cfg.Abort)
}

// New opens tracefs, the ports and the control port, and starts one idle
// goroutine per CPU. log may be nil.
func New(cfg Config, log *slog.Logger) (_ *Agent, err error) {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	a := &Agent{log: log, failed: make(chan error, 1), instanceName: cfg.Instance, bufferPercent: cfg.BufferPercent,
		stateDir: cfg.StateDir, replyQueue: cfg.ReplyQueue, statsEvery: cfg.StatsEvery, version: cfg.Version}
	if a.instanceName == "" {
		a.instanceName = DefaultInstance
	}
	if !wire.ValidName(a.instanceName) {
		return nil, fmt.Errorf("check instance name %q: want one name of [A-Za-z0-9_.-], not . or ..", a.instanceName)
	}
	if a.bufferPercent == 0 {
		a.bufferPercent = DefaultBufferPercent
	}
	if a.bufferPercent > 100 {
		return nil, fmt.Errorf("check buffer percent %d: want 0 to 100 (negative: leave it alone)", a.bufferPercent)
	}
	if a.stateDir == "" {
		a.stateDir = DefaultStateDir
	}
	if a.replyQueue <= 0 {
		a.replyQueue = DefaultReplyQueue
	}
	if a.statsEvery <= 0 {
		a.statsEvery = 2 * time.Second
	}
	if a.version == "" {
		a.version = "dev"
	}
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
	if a.layout, err = ringbuf.LayoutFromTracefs(a.tracefs); err != nil {
		return nil, fmt.Errorf("read ring-buffer page layout: %w", err)
	}
	cpus := cfg.CPUs
	if cpus == nil {
		if cpus, err = OnlineCPUs(); err != nil {
			return nil, err
		}
	}
	pipeSize := cfg.PipeSize
	if pipeSize == 0 {
		pipeSize = DefaultPipeSize
	}
	if pipeSize < a.layout.PageSize {
		return nil, fmt.Errorf("check pipe size %d: smaller than a ring-buffer page (%d bytes)", pipeSize, a.layout.PageSize)
	}
	portsDir := cfg.PortsDir
	if portsDir == "" {
		portsDir = DefaultPortsDir
	}
	finder := portFinder{dir: portsDir, sysClass: "/sys/class/virtio-ports", dev: "/dev"}

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
	a.cpus = cpus
	var stdout *stdoutOut
	if cfg.Stdout != nil {
		stdout = &stdoutOut{fdesc: int(cfg.Stdout.Fd()), keep: cfg.Stdout}
	}
	for _, cpu := range cpus {
		w, err := a.newWorker(cpu, pipeSize, finder, stdout)
		if err != nil {
			return nil, err
		}
		a.workers = append(a.workers, w)
	}
	for _, w := range a.workers {
		go func() {
			err := w.run()
			if err != nil && !errors.Is(err, errAborted) {
				select {
				case a.failed <- err:
				default:
				}
			}
			close(w.exited)
		}()
	}
	a.started = true
	log.Debug("agent ready", "tracefs", a.tracefs, "cpus", FormatCPUList(cpus), "page", a.layout.PageSize,
		"pipe", pipeSize, "control", a.ctlPath)
	return a, nil
}

func (a *Agent) newWorker(cpu, pipeSize int, finder portFinder, stdout *stdoutOut) (*worker, error) {
	w := &worker{
		cpu:       cpu,
		layout:    a.layout,
		page:      a.layout.PageSize,
		buf:       make([]byte, a.layout.PageSize),
		tracePath: tracefs.PerCPU(a.tracefs, cpu, "trace_pipe_raw"),
		trace:     -1, pipeR: -1, pipeW: -1,
		orders: make(chan order, 1),
		exited: make(chan struct{}),
		abort:  &a.abort,
		log:    a.log.With("cpu", cpu),
	}
	var err error
	defer func() {
		if err != nil {
			w.close()
		}
	}()
	if w.trace, err = sys.Open(w.tracePath, sys.ORdonly|sys.ONonblock, 0); err != nil {
		return nil, fmt.Errorf("cpu %d: %w", cpu, err)
	}
	if w.pipeR, w.pipeW, w.pipeCap, err = sys.Pipe(pipeSize); err != nil {
		return nil, fmt.Errorf("cpu %d: make a %d-byte pipe: %w", cpu, pipeSize, err)
	}
	if w.waker, err = sys.NewWaker(); err != nil {
		return nil, fmt.Errorf("cpu %d: %w", cpu, err)
	}
	if stdout != nil {
		w.out = stdout
		return w, nil
	}
	var path string
	if path, err = finder.find(dataPortNames(cpu), false); err != nil {
		return nil, fmt.Errorf("cpu %d: %w", cpu, err)
	}
	var fd int
	if fd, err = sys.Open(path, sys.ORdwr|sys.ONonblock, 0); err != nil {
		return nil, fmt.Errorf("cpu %d: open data port: %w", cpu, err)
	}
	w.out = &portOut{fdesc: fd, path: path}
	w.log.Debug("port", "path", path)
	return w, nil
}

// errState: a start while recording or a stop while idle.
var errState = errors.New("not possible now")

// Start records with the default settings: the default directory, as
// it is. Starting a recording agent does nothing.
func (a *Agent) Start(ctx context.Context) error {
	err := a.StartWith(ctx, wire.Settings{})
	if errors.Is(err, errState) {
		return nil
	}
	return err
}

// StartWith sets up what s asks for (an ftrace instance of the agent's,
// unless s is empty) and tells every CPU to stream it. An error in s is
// returned as such, with nothing left applied; it wraps errState when
// the agent is already recording.
func (a *Agent) StartWith(ctx context.Context, s wire.Settings) error {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.rec != nil {
		a.log.Debug("start: already recording")
		return fmt.Errorf("start: already recording: %w", errState)
	}
	r, err := a.prepare(s)
	if err != nil {
		a.log.Warn("start refused", "err", err)
		return err
	}
	a.log.Debug("start", "dir", r.dir, "settings", fmt.Sprintf("%+v", s))
	if r.instance == "" {
		// A buffer the agent did not make has a past; a fresh instance
		// has none, and everything it counts is this recording's.
		if r.base, err = readCPUStats(r.dir, a.workers); err != nil {
			a.log.Warn("read stats at start: counters will be the buffer's lifetime ones", "err", err)
		}
	}
	if err := a.order(ctx, orderStart, r.dir); err != nil {
		a.order(context.WithoutCancel(ctx), orderStop, a.tracefs)
		a.finish(r)
		return err
	}
	a.rec = r
	return nil
}

// Stop tells every CPU to send everything recorded so far, last partial
// page included, and to go idle; it returns when all have, or when ctx
// ends (the CPUs then finish in the background). Stopping an idle agent
// does nothing.
func (a *Agent) Stop(ctx context.Context) error {
	_, err := a.StopWith(ctx)
	if errors.Is(err, errState) {
		return nil
	}
	return err
}

// StopWith stops as Stop does, then reads each CPU's final stats and
// undoes what the recording set up (its instance is removed). In the
// agent's own instance tracing is turned off first, so that the drain
// sends every event recorded; the top-level buffer keeps tracing. It
// wraps errState when the agent is idle.
func (a *Agent) StopWith(ctx context.Context) ([]wire.CPUStats, error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	r := a.rec
	if r == nil {
		a.log.Debug("stop: not recording")
		return nil, fmt.Errorf("stop: not recording: %w", errState)
	}
	a.log.Debug("stop")
	a.freeze(r)
	err := a.order(ctx, orderStop, a.tracefs)
	if err != nil {
		return nil, err
	}
	stats, serr := readCPUStats(r.dir, a.workers)
	if serr != nil {
		a.log.Warn("read final stats", "err", serr)
	}
	stats = r.since(stats)
	a.rec = nil
	a.last = &wire.Status{Settings: r.settings, CPUs: stats}
	a.finish(r) // logs what it could not undo
	return stats, nil
}

// freeze turns tracing off in the agent's own instance: nothing more is
// recorded, so the drain that follows takes everything and the stop point
// is exact (entries 0 in the final stats). The top-level buffer (or the
// --tracefs instance) is the guest's own tracing and keeps running.
func (a *Agent) freeze(r *recording) {
	if r == nil || r.instance == "" {
		return
	}
	if err := writeFile(filepath.Join(r.dir, "tracing_on"), "0"); err != nil {
		a.log.Warn("could not turn tracing off in the agent's instance: the stop is not exact", "instance", r.instance, "err", err)
	}
}

// order hands kind to every CPU and waits until each has carried it out.
// dir names the tracefs directory to read from (see order.trace).
func (a *Agent) order(ctx context.Context, kind orderKind, dir string) error {
	dones := make([]chan error, len(a.workers))
	for i, w := range a.workers {
		dones[i] = make(chan error, 1)
		trace := ""
		if dir != "" {
			trace = tracefs.PerCPU(dir, w.cpu, "trace_pipe_raw")
		}
		select {
		case w.orders <- order{kind, dones[i], trace}:
			w.waker.Wake()
		case <-w.exited:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	var first error
	for i, w := range a.workers {
		select {
		case err := <-dones[i]:
			if err != nil && first == nil {
				first = err
			}
		case <-w.exited:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	return first
}

// input is one thing read from the control port.
type input struct {
	order control.Item // text: an order or garbage, when frame and err are nil
	frame *wire.Frame
	err   error // a frame that could not be read
}

// Run obeys the control port until ctx ends or a CPU fails, then stops
// every CPU (giving up after drainTimeout, if not 0, or when abort is
// closed) and closes the agent.
func (a *Agent) Run(ctx context.Context, drainTimeout time.Duration, abort <-chan struct{}) error {
	inputs := make(chan input)
	readerDone := make(chan struct{})
	s := &session{a: a, stop: ctx.Done(), abort: abort}
	if a.ctl != nil {
		s.out = newCtlOut(a.reply, a.replyPath(), a.replyQueue, a.log)
		defer s.out.close()
		go a.readControl(inputs, readerDone)
	} else {
		a.log.Info("no control port: streaming at once")
		if err := a.Start(ctx); err != nil {
			return a.shutdown(err, drainTimeout, abort)
		}
	}
	for {
		var err error
		select {
		case <-ctx.Done():
			close(readerDone)
			return a.shutdown(nil, drainTimeout, abort)
		case err = <-a.failed:
			close(readerDone)
			a.abortAll()
			return a.shutdown(err, drainTimeout, abort)
		case in := <-inputs:
			err = s.handle(ctx, in)
		case <-s.tick:
			s.stats()
		}
		if err != nil && ctx.Err() == nil {
			close(readerDone)
			a.abortAll()
			return a.shutdown(err, drainTimeout, abort)
		}
	}
}

// readControl splits what the control port says into frames and text,
// feeds the text to the order parser, and hands both on until done is
// closed or the port is.
func (a *Agent) readControl(inputs chan<- input, done <-chan struct{}) {
	var d wire.Demux
	var p control.Parser
	buf := make([]byte, 64<<10)
	const minWait, maxWait = 10 * time.Millisecond, time.Second
	wait := minWait
	hand := func(in input) bool {
		select {
		case inputs <- in:
			return true
		case <-done:
			return false
		}
	}
	for {
		n, err := a.ctl.Read(buf)
		for _, it := range d.Feed(buf[:n]) {
			switch {
			case it.Frame != nil:
				if !hand(input{frame: it.Frame}) {
					return
				}
			case it.Err != nil:
				if !hand(input{err: it.Err}) {
					return
				}
			default:
				for _, o := range p.Feed(it.Text) {
					if !hand(input{order: o}) {
						return
					}
				}
			}
		}
		switch {
		case err == nil:
			wait = minWait
		case errors.Is(err, io.EOF):
			// A virtio port whose host end is closed reads EOF and polls
			// as hung up at once: look again later, ever more slowly. A
			// frame cut short by the host that went away is dropped.
			if ferr := d.Flush(); ferr != nil && !hand(input{err: ferr}) {
				return
			}
			if wait == minWait {
				a.log.Debug("control port: host end closed, waiting for it")
			}
			select {
			case <-time.After(wait):
			case <-done:
				return
			}
			wait = min(2*wait, maxWait)
		case errors.Is(err, os.ErrClosed):
			return
		default:
			select {
			case a.failed <- fmt.Errorf("read control port %s: %w", a.ctlPath, err):
			default:
			}
			return
		}
	}
}

// shutdown stops every CPU as Stop does, bounded as Run says, and closes.
func (a *Agent) shutdown(cause error, drainTimeout time.Duration, abort <-chan struct{}) error {
	if a.ctl != nil {
		a.ctl.Close() // ends readControl's Read
	}
	a.mu.Lock()
	a.freeze(a.rec)
	for _, w := range a.workers {
		select {
		case w.orders <- order{kind: orderQuit, done: make(chan error, 1)}:
			w.waker.Wake()
		case <-w.exited:
		}
	}
	a.mu.Unlock()
	var timeout <-chan time.Time
	if drainTimeout > 0 {
		t := time.NewTimer(drainTimeout)
		defer t.Stop()
		timeout = t.C
	}
	for _, w := range a.workers {
		select {
		case <-w.exited:
			continue
		case <-timeout:
			if cause == nil {
				cause = fmt.Errorf("stop: gave up after %v: the host is not reading (pages left behind)", drainTimeout)
			}
		case <-abort:
			a.log.Warn("stop cut short: pages left behind")
		}
		a.abortAll()
		<-w.exited
	}
	select {
	case err := <-a.failed:
		if cause == nil {
			cause = err
		}
	default:
	}
	a.Close()
	return cause
}

// abortAll makes every CPU give up what it is waiting for.
func (a *Agent) abortAll() {
	a.abort.Store(true)
	for _, w := range a.workers {
		w.waker.Wake()
	}
}

// Close stops the CPU goroutines at once (nothing more is sent) and closes
// every file. It is safe to call more than once.
func (a *Agent) Close() error {
	a.closeOnce.Do(func() {
		if a.ctl != nil {
			a.ctl.Close()
		}
		if a.reply != nil && a.reply != a.ctl {
			a.reply.Close()
		}
		if a.started {
			a.abortAll()
			for _, w := range a.workers {
				select {
				case w.orders <- order{kind: orderQuit, done: make(chan error, 1)}:
					w.waker.Wake()
				case <-w.exited:
				}
				<-w.exited
			}
		}
		for _, w := range a.workers {
			w.close()
		}
		// The CPU goroutines have let go of every trace file: the
		// recording's instance can go.
		a.mu.Lock()
		if a.rec != nil {
			a.finish(a.rec)
			a.rec = nil
		}
		a.mu.Unlock()
	})
	return nil
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
