// Package collect moves a guest's per-CPU trace streams out of their channel
// FIFOs (DIR/trace-path-cpuN.out) into a capture directory, one file of raw
// ring-buffer pages per CPU (OUT/cpuN.raw).
//
// Each CPU has one goroutine that splices its FIFO into its file, so the
// data never passes through user space and the guest never waits on us more
// than the disk makes it. A FIFO is opened O_RDWR|O_NONBLOCK: the open never
// blocks, and the stream never reaches end of file when libvirt or qemu close
// and reopen their end.
//
// A capture file is a sequence of whole pages. The collector only appends;
// when it stops, a trailing partial page (the stream stopped mid-page, or the
// disk filled up) is cut off and reported.
//
// With Start, collect talks to the guest agent (agent.go): over the control
// protocol when the agent answers the handshake (metadata into OUT/meta,
// settings, live stats, a confirmed stop, OUT/trace.dat at the end), with
// the seed's bare orders otherwise (raw pages only).
//
// Lifecycle: Run opens every descriptor it uses and closes all of them before
// it returns, whatever happened; the capture files are fsynced first.
package collect

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/vtrace/vtrace/host/control"
	"github.com/vtrace/vtrace/host/fifo"
	"github.com/vtrace/vtrace/host/session"
	"github.com/vtrace/vtrace/host/tracedat"
	"github.com/vtrace/vtrace/internal/sys"
	"github.com/vtrace/vtrace/proto/ringbuf"
	"github.com/vtrace/vtrace/proto/wire"
)

// Defaults for the zero values of Config.
const (
	DefaultPageSize      = 4096
	DefaultSettle        = 500 * time.Millisecond
	DefaultDrainTimeout  = 10 * time.Second
	DefaultProgressEvery = 500 * time.Millisecond
	DefaultFIFOSize      = 1 << 20
)

// Config says what to collect and how.
type Config struct {
	Dir string // the domain's FIFO directory
	Out string // the capture directory, made if missing
	// PageSize is the guest's ring-buffer page size; when 0, the one the
	// agent gave in the handshake, else DefaultPageSize.
	PageSize int
	Duration time.Duration // stop after this long (0: only when ctx is done)
	// Start sends the start order once every FIFO is open and the stop
	// order at the end, before draining.
	Start        bool
	OrderTimeout time.Duration // for each order or reply (control.DefaultTimeout when 0)
	// HandshakeTimeout is how long Start waits for the agent's answer to
	// Hello before it uses the seed's bare orders
	// (session.DefaultHandshakeTimeout when 0).
	HandshakeTimeout time.Duration
	// Settings choose what the agent records; they need Start and an
	// agent that speaks the protocol.
	Settings wire.Settings
	// Log, when not nil, gets notices as they happen (the seed-mode one).
	Log io.Writer
	// Force replaces the cpuN.raw files of an earlier capture in Out.
	Force bool
	// Settle is how long the streams must stay quiet after the stop order
	// before the capture ends, so the agent's last partial pages arrive.
	// Used only with Start (DefaultSettle when 0).
	Settle time.Duration
	// DrainTimeout bounds the whole drain at the end (DefaultDrainTimeout when 0).
	DrainTimeout time.Duration
	// FIFOSize is the buffer asked for each FIFO, so that bursts from the
	// guest fit while we write (DefaultFIFOSize when 0; best effort).
	FIFOSize int
	// Progress, when not nil, gets one line of per-CPU bytes and rates,
	// rewritten in place with \r every ProgressEvery, and a last line
	// ending in \n when the capture ends.
	Progress      io.Writer
	ProgressEvery time.Duration
	// TraceDatOptions choose the version and compression of OUT/trace.dat
	// (the zero value: tracedat.DefaultFormat, uncompressed).
	TraceDatOptions tracedat.Options
}

// CPU is what was saved for one CPU.
type CPU struct {
	CPU     int
	File    string        // OUT/cpuN.raw
	Bytes   int64         // bytes kept: whole pages only
	Dropped int64         // bytes of a trailing partial page cut off at the end
	Stats   ringbuf.Stats // what the page reader found in File
	ScanErr error         // why the page reader stopped early, if it did
}

// Summary is the outcome of a capture.
type Summary struct {
	Out      string
	PageSize int
	Elapsed  time.Duration
	CPUs     []CPU
	Notes    []string // things that did not stop the capture but matter

	Agent      *wire.HelloReply // the agent that answered the handshake; nil without one
	AgentStats []wire.CPUStats  // each CPU's final counters, from the agent's StopReply
	Meta       string           // OUT/meta, when saved
	TraceDat   string           // OUT/trace.dat, when written
}

// ErrExists is returned (wrapped) when Out holds a capture and Force is off.
var ErrExists = errors.New("capture already exists")

// spliceChunk is the most one splice(2) call moves.
const spliceChunk = 1 << 20

// reopenPause keeps a stream that keeps hitting end of file from spinning.
const reopenPause = 100 * time.Millisecond

// Phases of a capture, seen by every stream.
const (
	phaseRun int32 = iota
	phaseDrain
	phaseAbort
)

// capture is the state shared by the streams of one Run.
type capture struct {
	cfg     Config
	agent   *agent // nil without Start
	phase   atomic.Int32
	wake    *sys.Waker // woken once, when the phase leaves phaseRun
	settle  time.Duration
	drainBy atomic.Int64 // unix nanoseconds; set when draining starts
}

// stream is one CPU's FIFO and capture file; one goroutine owns it.
type stream struct {
	cpu     int
	fifo    string
	file    string
	in, out int
	written atomic.Int64
	dropped int64
	late    bool // still flowing when the drain timed out
}

// Run collects until ctx is done, cfg.Duration passes or a stream fails,
// then drains the FIFOs and returns what was saved. The Summary is valid
// (and worth printing) even when err is not nil, unless nothing was opened.
func Run(ctx context.Context, cfg Config) (Summary, error) {
	cfg = withDefaults(cfg)
	sum := Summary{Out: cfg.Out}
	if !cfg.Start && !cfg.Settings.IsZero() {
		return sum, fmt.Errorf("check the recording's settings: %w: without it collect does not talk to the agent", errNoStart)
	}
	cpus, err := Discover(cfg.Dir)
	if err != nil {
		return sum, err
	}
	var ag *agent
	if cfg.Start {
		if ag, err = openAgent(ctx, cfg, &sum); err != nil {
			return sum, err
		}
		defer ag.close()
	}
	cfg.PageSize = pageSize(cfg, ag)
	sum.PageSize = cfg.PageSize
	layout := ringbuf.DefaultLayout()
	layout.PageSize = cfg.PageSize
	if err := layout.Validate(); err != nil {
		return sum, fmt.Errorf("check page size %d: %w", cfg.PageSize, err)
	}
	if err := prepareOut(cfg.Out, cfg.Force); err != nil {
		return sum, err
	}
	streams, err := openStreams(cfg, cpus, &sum)
	if err != nil {
		return sum, err
	}
	if ag.protocol() {
		if err := ag.fetchMeta(ctx, &sum); err != nil {
			closeStreams(streams, true)
			ag.discard()
			return sum, err
		}
	}
	wake, err := sys.NewWaker()
	if err != nil {
		closeStreams(streams, true)
		ag.discard()
		return sum, err
	}
	defer wake.Close()

	c := &capture{cfg: cfg, agent: ag, wake: wake}
	if cfg.Start {
		c.settle = cfg.Settle
	}
	begin := time.Now()
	errs := make(chan error, len(streams))
	var wg sync.WaitGroup
	for _, s := range streams {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := s.run(c); err != nil {
				errs <- err
			}
		}()
	}
	progressDone := make(chan struct{})
	stopProgress := make(chan struct{})
	go func() {
		defer close(progressDone)
		progress(cfg, streams, ag.liveStats, begin, stopProgress)
	}()

	started, runErr := c.wait(ctx, errs, &sum)

	wg.Wait()
	close(stopProgress)
	<-progressDone
	if !started && !slices.ContainsFunc(streams, func(s *stream) bool { return s.written.Load() > 0 }) {
		// Nothing was asked of the guest and nothing came: leave no
		// capture behind, so the next try needs no --force.
		closeStreams(streams, true)
		ag.discard()
		return sum, runErr
	}
	sum.Elapsed = time.Since(begin)
	if runErr == nil {
		select {
		case runErr = <-errs: // a stream failed while draining
		default:
		}
	}
	if ferr := finish(streams, &sum); runErr == nil {
		runErr = ferr
	}
	for _, s := range streams {
		st, serr := ringbuf.ScanFile(layout, s.file, nil)
		sum.CPUs = append(sum.CPUs, CPU{CPU: s.cpu, File: s.file, Bytes: s.written.Load(), Dropped: s.dropped, Stats: st, ScanErr: serr})
	}
	if started {
		if err := ag.finish(ctx, &sum); err != nil && runErr == nil {
			runErr = err
		}
	}
	return sum, runErr
}

// wait sends the start order if asked, waits for the end of the capture,
// sends the stop order, and switches the streams to draining (or aborting
// when something failed). It returns whether the capture started (false
// only when the start order could not be sent) and the error that ended it.
func (c *capture) wait(ctx context.Context, errs <-chan error, sum *Summary) (bool, error) {
	cfg := c.cfg
	var drainBy time.Time
	end := func(phase int32) {
		if drainBy.IsZero() {
			drainBy = time.Now().Add(cfg.DrainTimeout)
		}
		c.drainBy.Store(drainBy.UnixNano())
		c.phase.Store(phase)
		c.wake.Wake()
	}
	if c.agent != nil {
		if err := c.agent.start(ctx); err != nil {
			if c.agent.protocol() && !errors.Is(err, session.ErrAgent) {
				// The Start went out but its answer did not come in
				// (interrupted, timed out): the agent may be recording.
				// Stop it, the streams reading what it pushes meanwhile,
				// so that it does not keep its instance for nobody.
				drainBy = time.Now().Add(cfg.DrainTimeout)
				c.agent.stop(ctx, drainBy, sum)
			}
			end(phaseAbort)
			return false, err
		}
	}
	var timeout <-chan time.Time
	if cfg.Duration > 0 {
		t := time.NewTimer(cfg.Duration)
		defer t.Stop()
		timeout = t.C
	}
	var err error
	select {
	case <-ctx.Done():
	case <-timeout:
	case err = <-errs:
	}
	if c.agent != nil {
		// The drain's time runs from the stop: the streams keep moving
		// (phaseRun) until the agent says its last pages are pushed.
		drainBy = time.Now().Add(cfg.DrainTimeout)
		c.agent.stop(ctx, drainBy, sum)
	}
	if err != nil {
		end(phaseAbort)
		return true, err
	}
	end(phaseDrain)
	return true, nil
}

// run moves the stream until the capture ends and the FIFO is drained.
func (s *stream) run(c *capture) error {
	draining := false
	for {
		switch c.phase.Load() {
		case phaseAbort:
			return nil
		case phaseDrain:
			draining = true
		}
		if draining && time.Now().UnixNano() > c.drainBy.Load() {
			s.late = true // the stream never went quiet
			return nil
		}
		n, err := sys.Splice(s.in, s.out, spliceChunk, sys.SpliceMove|sys.SpliceNonblock)
		if n > 0 {
			s.written.Add(int64(n))
			continue
		}
		switch {
		case err == nil:
			// End of file: every writer closed the FIFO, which our own
			// O_RDWR open should prevent. Reopen rather than spin.
			if err := s.reopen(c); err != nil {
				return err
			}
			continue
		case !errors.Is(err, sys.EAGAIN):
			return fmt.Errorf("move CPU %d's stream from %s into %s: %w", s.cpu, s.fifo, s.file, err)
		}
		// The FIFO is empty.
		if !draining {
			if _, _, err := sys.Poll(s.in, sys.In, c.wake, -1); err != nil {
				return fmt.Errorf("wait for CPU %d's stream: %w", s.cpu, err)
			}
			continue // data, or woken: the loop sees which
		}
		if left, err := sys.PipeBuffered(s.in); err == nil && left > 0 {
			continue
		}
		// Quiet means quiet for the whole settle period: a wait that the
		// drain deadline cut short proves nothing, and the stream counts
		// as still streaming.
		left := time.Until(time.Unix(0, c.drainBy.Load()))
		if left <= 0 {
			s.late = true
			return nil
		}
		wait := min(c.settle, left)
		ev, _, err := sys.Poll(s.in, sys.In, nil, wait)
		if err != nil {
			return fmt.Errorf("wait for CPU %d's stream: %w", s.cpu, err)
		}
		if ev == sys.Timeout {
			s.late = wait < c.settle
			return nil
		}
	}
}

func (s *stream) reopen(c *capture) error {
	sys.Close(s.in)
	s.in = -1
	if _, _, err := sys.Poll(-1, 0, c.wake, reopenPause); err != nil {
		return fmt.Errorf("wait to reopen %s: %w", s.fifo, err)
	}
	fd, err := fifo.Open(s.fifo, sys.FIFOReadNonblock)
	if err != nil {
		return fmt.Errorf("reopen CPU %d's stream: %w", s.cpu, err)
	}
	s.in = fd
	return nil
}

// finish cuts every file back to whole pages, fsyncs them and the capture
// directory (which makes their names durable), and closes everything.
func finish(streams []*stream, sum *Summary) error {
	var first error
	for _, s := range streams {
		if s.late {
			sum.Notes = append(sum.Notes, fmt.Sprintf("CPU %d: still streaming when the drain timeout passed: the capture ends there", s.cpu))
		}
		size := s.written.Load()
		keep := size - size%int64(sum.PageSize)
		if keep < size {
			if err := sys.Ftruncate(s.out, keep); err != nil && first == nil {
				first = fmt.Errorf("truncate %s to whole pages: %w", s.file, err)
			}
			s.dropped = size - keep
			s.written.Store(keep)
			sum.Notes = append(sum.Notes, fmt.Sprintf("CPU %d: cut a trailing partial page of %d bytes from %s", s.cpu, s.dropped, s.file))
		}
		if err := sys.Fsync(s.out); err != nil && first == nil {
			first = fmt.Errorf("fsync %s: %w", s.file, err)
		}
	}
	if err := sys.SyncDir(sum.Out); err != nil && first == nil {
		first = fmt.Errorf("fsync the capture directory: %w", err)
	}
	// OUT is often new, and its parent holds its name; that parent may
	// not be ours to read, so this one is best effort.
	sys.SyncDir(filepath.Dir(sum.Out))
	if err := closeStreams(streams, false); err != nil && first == nil {
		first = err
	}
	return first
}

func closeStreams(streams []*stream, remove bool) error {
	var first error
	for _, s := range streams {
		sys.Close(s.in)
		if err := sys.Close(s.out); err != nil && first == nil {
			first = fmt.Errorf("close %s: %w", s.file, err)
		}
		if remove {
			os.Remove(s.file)
		}
	}
	return first
}

func withDefaults(cfg Config) Config {
	if cfg.OrderTimeout <= 0 {
		cfg.OrderTimeout = control.DefaultTimeout
	}
	if cfg.HandshakeTimeout <= 0 {
		cfg.HandshakeTimeout = session.DefaultHandshakeTimeout
	}
	if cfg.Settle <= 0 {
		cfg.Settle = DefaultSettle
	}
	if cfg.DrainTimeout <= 0 {
		cfg.DrainTimeout = DefaultDrainTimeout
	}
	if cfg.FIFOSize <= 0 {
		cfg.FIFOSize = DefaultFIFOSize
	}
	if cfg.ProgressEvery <= 0 {
		cfg.ProgressEvery = DefaultProgressEvery
	}
	return cfg
}

// Discover lists the CPUs that have a data FIFO (trace-path-cpuN.out) in
// dir, in increasing order. Names that are not exactly that are ignored.
func Discover(dir string) ([]int, error) {
	ents, err := os.ReadDir(dir)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return nil, fmt.Errorf("read FIFO directory: %w: run `vtrace host setup <domain>` first", err)
		}
		return nil, fmt.Errorf("read FIFO directory: %w", err)
	}
	var cpus []int
	for _, e := range ents {
		name, ok := strings.CutSuffix(e.Name(), ".out")
		if !ok {
			continue
		}
		if n, ok := fifo.ParseTraceName(name); ok {
			cpus = append(cpus, n)
		}
	}
	if len(cpus) == 0 {
		return nil, fmt.Errorf("find data FIFOs: no %s.out in %s: run `vtrace host setup <domain>` first", fifo.TraceName(0), dir)
	}
	slices.Sort(cpus)
	return cpus, nil
}

// FileName is the name of CPU cpu's capture file: cpuN.raw.
func FileName(cpu int) string { return "cpu" + strconv.Itoa(cpu) + ".raw" }

// isFileName reports whether name is FileName(n) for some n, written
// without sign or leading zeros.
func isFileName(name string) bool {
	s, ok := strings.CutPrefix(name, "cpu")
	if !ok {
		return false
	}
	if s, ok = strings.CutSuffix(s, ".raw"); !ok || s == "" || len(s) > 6 || (len(s) > 1 && s[0] == '0') {
		return false
	}
	for _, c := range s {
		if c < '0' || c > '9' {
			return false
		}
	}
	return true
}

// prepareOut makes the capture directory, refusing to mix with or replace
// an earlier capture unless force is set, in which case its files go.
func prepareOut(out string, force bool) error {
	if out == "" {
		return errors.New("check output directory: none given")
	}
	if err := os.MkdirAll(out, 0o750); err != nil {
		return fmt.Errorf("make output directory: %w", err)
	}
	ents, err := os.ReadDir(out)
	if err != nil {
		return fmt.Errorf("read output directory: %w", err)
	}
	var old []string
	for _, e := range ents {
		if isFileName(e.Name()) || e.Name() == MetaDir || e.Name() == TraceDat {
			old = append(old, e.Name())
		}
	}
	if len(old) == 0 {
		return nil
	}
	if !force {
		return fmt.Errorf("check output directory %s: %w (%s): use --force to replace it, or another directory", out, ErrExists, strings.Join(old, ", "))
	}
	for _, name := range old {
		// RemoveAll does not follow a symlink named meta: it removes the link.
		if err := os.RemoveAll(filepath.Join(out, name)); err != nil {
			return fmt.Errorf("remove earlier capture file: %w", err)
		}
	}
	return nil
}

// openStreams opens every CPU's FIFO and creates its capture file.
func openStreams(cfg Config, cpus []int, sum *Summary) ([]*stream, error) {
	var streams []*stream
	fail := func(err error) ([]*stream, error) {
		closeStreams(streams, true)
		return nil, err
	}
	for _, cpu := range cpus {
		_, path := fifo.Paths(cfg.Dir, fifo.TraceName(cpu))
		in, err := fifo.Open(path, sys.FIFOReadNonblock)
		if err != nil {
			return fail(fmt.Errorf("open CPU %d's stream: %w", cpu, err))
		}
		if _, err := sys.SetPipeSize(in, cfg.FIFOSize); err != nil {
			sum.Notes = append(sum.Notes, fmt.Sprintf("CPU %d: keep the FIFO's default buffer: %v", cpu, err))
		}
		file := filepath.Join(cfg.Out, FileName(cpu))
		out, err := sys.Open(file, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o640)
		if err != nil {
			sys.Close(in)
			return fail(fmt.Errorf("create capture file: %w", err))
		}
		streams = append(streams, &stream{cpu: cpu, fifo: path, file: file, in: in, out: out})
	}
	return streams, nil
}
