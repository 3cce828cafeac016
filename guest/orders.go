package guest

// The order API: Start and Stop from Go (the control loop calls them too),
// and how an order reaches every CPU goroutine.

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"

	"github.com/vtrace/vtrace/internal/sys"
	"github.com/vtrace/vtrace/proto/ringbuf"
	"github.com/vtrace/vtrace/proto/tracefs"
	"github.com/vtrace/vtrace/proto/wire"
)

type orderKind int

const (
	orderStart orderKind = iota
	orderStop
	orderQuit // stop, then end the goroutine
)

type order struct {
	kind  orderKind
	done  chan error // buffered; receives the outcome
	trace string     // start: read this trace_pipe_raw; stop: switch to it after the drain ("" keeps the current one)
	// layout is a start's page layout: that of the directory it streams,
	// read at the start (its sub-buffer size may have changed).
	layout ringbuf.Layout
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
// unless s is empty) and tells every CPU to stream it. When s cannot be
// applied, or the agent is already recording, the error says why and
// nothing was changed.
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
	if r.layout, err = a.layoutOf(r.dir); err != nil {
		a.finish(r)
		return &settingsError{err}
	}
	a.log.Debug("start", "dir", r.dir, "settings", fmt.Sprintf("%+v", s), "page", r.layout.PageSize)
	if r.cpus = a.plan(true); len(r.cpus.workers) == 0 {
		a.finish(r)
		return settingsErrorf("start: no CPU to stream (%s)", formatUnstreamed(r.cpus.unstreamed))
	}
	a.logChange(r.cpus)
	if r.instance == "" {
		// A buffer the agent did not make has a past; a fresh instance
		// has none, and everything it counts is this recording's.
		if r.base, err = readCPUStats(r.dir, r.cpus.workers); err != nil {
			a.log.Warn("read stats at start: counters will be the buffer's lifetime ones", "err", err)
		}
	}
	a.pageSizeForStdout(r.layout.PageSize)
	a.pace.begin(r.dir, a.latency(s), r.watermark, r.cpus.workers)
	if err := a.order(ctx, r.cpus.workers, order{kind: orderStart, layout: r.layout}, r.dir); err != nil {
		a.order(context.WithoutCancel(ctx), r.cpus.workers, order{kind: orderStop}, a.tracefs)
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
// sends every event recorded; the top-level buffer keeps tracing.
// Stopping an idle agent is an error.
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
	err := a.order(ctx, r.cpus.workers, order{kind: orderStop}, a.tracefs)
	if err != nil {
		return nil, err
	}
	stats, serr := readCPUStats(r.dir, r.cpus.workers)
	if serr != nil {
		a.log.Warn("read final stats", "err", serr)
	}
	stats = r.since(stats)
	unstreamed := a.unstreamedNow(r)
	for _, u := range unstreamed {
		if u.Reason == reasonLate {
			a.log.Warn("a CPU came online during the recording: it is not in it", "cpu", u.CPU, "streamed", "from the next start")
		}
	}
	a.rec = nil
	a.last = &wire.Status{Settings: r.settings, CPUs: stats, Unstreamed: unstreamed}
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

// order hands o (its kind and layout) to the CPUs of workers and waits
// until each has carried it out. dir names the tracefs directory to read
// from (see order.trace).
func (a *Agent) order(ctx context.Context, workers []*worker, o order, dir string) error {
	dones := make([]chan error, len(workers))
	for i, w := range workers {
		dones[i] = make(chan error, 1)
		trace := ""
		if dir != "" {
			trace = tracefs.PerCPU(dir, w.cpu, "trace_pipe_raw")
		}
		if !w.tell(ctx.Done(), order{kind: o.kind, done: dones[i], trace: trace, layout: o.layout}) {
			return ctx.Err()
		}
	}
	var first error
	for i, w := range workers {
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

// tell hands o to the CPU goroutine and wakes it; a goroutine that has
// ended takes no order. It reports false when cancel closed first.
func (w *worker) tell(cancel <-chan struct{}, o order) bool {
	select {
	case w.orders <- o:
		w.waker.Wake()
	case <-w.exited:
	case <-cancel:
		return false
	}
	return true
}

// obey carries out o in the CPU goroutine: a start binds the thread to
// its CPU (again: the CPU may have gone offline and come back, which undoes
// the binding), takes the start's page layout and opens its trace file
// afresh; a stop (or quit) drains, then a stop switches back. It returns
// whether the CPU is now streaming.
func (w *worker) obey(o order, running bool) (bool, error) {
	switch {
	case o.kind == orderStart && !running:
		w.bind(true)
		w.setLayout(o.layout)
		if err := w.reopen(o.trace); err != nil {
			return false, err
		}
		w.sent.Store(0)
		w.partial = 0
		w.begin()
		w.log.Debug("streaming", "from", w.tracePath, "latency", w.latency)
		return true, nil
	case o.kind != orderStart && running:
		err := w.drain()
		w.end()
		w.log.Debug("stopped", "bytes", w.sent.Load(), "pages", w.sent.Load()/int64(w.page), "partial", w.partial, "err", err)
		if err == nil && o.kind == orderStop {
			err = w.use(o.trace)
		}
		return false, err
	}
	return running, nil
}

// use switches to another trace_pipe_raw (an ftrace instance's, or back
// to the default one), closing the old one so that an instance can be
// removed. "" or the current path keeps the current file.
func (w *worker) use(path string) error {
	if path == "" || path == w.tracePath {
		return nil
	}
	return w.reopen(path)
}

// reopen opens path ("": the current trace file) and closes the file read
// so far. A start reads from a fresh open: the kernel splices a
// trace_pipe_raw only at file positions that are whole multiples of the
// sub-buffer size (tracing_buffers_splice_read), which a file read with
// another sub-buffer size may not be at.
func (w *worker) reopen(path string) error {
	if path == "" {
		path = w.tracePath
	}
	fd, err := sys.Open(path, sys.ORdonly|sys.ONonblock, 0)
	if err != nil {
		return opError(w.cpu, "open", path, err)
	}
	sys.Close(w.trace)
	w.trace, w.tracePath = fd, path
	return nil
}

// setLayout makes l the page layout of the worker's stream: the pages it
// splices, and the one its stop reads.
func (w *worker) setLayout(l ringbuf.Layout) {
	if l.PageSize == 0 {
		return // an order without one (tests): keep the current layout
	}
	w.layout, w.page = l, l.PageSize
	if cap(w.buf) < l.PageSize {
		w.buf = make([]byte, l.PageSize)
	}
	w.buf = w.buf[:l.PageSize]
}
