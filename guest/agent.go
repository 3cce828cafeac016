package guest

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"

	"github.com/vtrace/vtrace/internal/sys"
	"github.com/vtrace/vtrace/proto/control"
	"github.com/vtrace/vtrace/proto/ringbuf"
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
}

// Agent streams the CPUs of one tracefs to the host.
type Agent struct {
	log     *slog.Logger
	tracefs string
	layout  ringbuf.Layout
	workers []*worker
	ctl     *os.File // nil when there is no control port (-o only)
	ctlPath string
	abort   atomic.Bool
	failed  chan error // the first fatal error of a CPU goroutine

	mu        sync.Mutex // serializes orders
	running   bool
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
	a := &Agent{log: log, failed: make(chan error, 1)}
	defer func() {
		if err != nil {
			a.Close()
		}
	}()
	if a.tracefs, err = FindTracefs(cfg.Tracefs); err != nil {
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

	if a.ctlPath, err = finder.find([]string{ctlPortName}, true); err != nil && cfg.Stdout == nil {
		return nil, err
	}
	if err == nil {
		if a.ctl, err = os.OpenFile(a.ctlPath, os.O_RDWR|sys.ONonblock, 0); err != nil {
			return nil, fmt.Errorf("open control port: %w", err)
		}
	}
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
		tracePath: filepath.Join(a.tracefs, "per_cpu", fmt.Sprintf("cpu%d", cpu), "trace_pipe_raw"),
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

// Start tells every CPU to stream. Starting a running agent does nothing.
func (a *Agent) Start(ctx context.Context) error {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.running {
		a.log.Debug("start: already running")
		return nil
	}
	a.running = true
	a.log.Debug("start")
	return a.order(ctx, orderStart)
}

// Stop tells every CPU to send everything recorded so far, last partial
// page included, and to go idle; it returns when all have, or when ctx
// ends (the CPUs then finish in the background). Stopping an idle agent
// does nothing.
func (a *Agent) Stop(ctx context.Context) error {
	a.mu.Lock()
	defer a.mu.Unlock()
	if !a.running {
		a.log.Debug("stop: not running")
		return nil
	}
	a.running = false
	a.log.Debug("stop")
	return a.order(ctx, orderStop)
}

// order hands kind to every CPU and waits until each has carried it out.
func (a *Agent) order(ctx context.Context, kind orderKind) error {
	dones := make([]chan error, len(a.workers))
	for i, w := range a.workers {
		dones[i] = make(chan error, 1)
		select {
		case w.orders <- order{kind, dones[i]}:
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

// Run obeys the control port until ctx ends or a CPU fails, then stops
// every CPU (giving up after drainTimeout, if not 0, or when abort is
// closed) and closes the agent.
func (a *Agent) Run(ctx context.Context, drainTimeout time.Duration, abort <-chan struct{}) error {
	items := make(chan control.Item)
	readerDone := make(chan struct{})
	if a.ctl != nil {
		go a.readControl(items, readerDone)
	} else {
		a.log.Info("no control port: streaming at once")
		if err := a.Start(ctx); err != nil {
			return a.shutdown(err, drainTimeout, abort)
		}
	}
	for {
		select {
		case <-ctx.Done():
			close(readerDone)
			return a.shutdown(nil, drainTimeout, abort)
		case err := <-a.failed:
			close(readerDone)
			a.abortAll()
			return a.shutdown(err, drainTimeout, abort)
		case it := <-items:
			var err error
			switch {
			case it.Long:
				a.log.Warn("control: line too long, ignored", "start", string(it.Garbage))
			case it.Garbage != nil:
				a.log.Warn("control: not an order, ignored", "line", string(it.Garbage))
			case it.Order == control.Start:
				err = a.Start(ctx)
			case it.Order == control.Stop:
				err = a.Stop(ctx)
			}
			if err != nil && ctx.Err() == nil {
				close(readerDone)
				a.abortAll()
				return a.shutdown(err, drainTimeout, abort)
			}
		}
	}
}

// readControl feeds what the control port says to the parser and hands on
// the items until done is closed or the port is.
func (a *Agent) readControl(items chan<- control.Item, done <-chan struct{}) {
	var p control.Parser
	buf := make([]byte, 512)
	const minWait, maxWait = 10 * time.Millisecond, time.Second
	wait := minWait
	for {
		n, err := a.ctl.Read(buf)
		for _, it := range p.Feed(buf[:n]) {
			select {
			case items <- it:
			case <-done:
				return
			}
		}
		switch {
		case err == nil:
			wait = minWait
		case errors.Is(err, io.EOF):
			// A virtio port whose host end is closed reads EOF and polls
			// as hung up at once: look again later, ever more slowly.
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
	a.running = false
	for _, w := range a.workers {
		select {
		case w.orders <- order{orderQuit, make(chan error, 1)}:
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
		if a.started {
			a.abortAll()
			for _, w := range a.workers {
				select {
				case w.orders <- order{orderQuit, make(chan error, 1)}:
					w.waker.Wake()
				case <-w.exited:
				}
				<-w.exited
			}
		}
		for _, w := range a.workers {
			w.close()
		}
	})
	return nil
}
