// Package hosttrace records the host's own trace events while a guest is
// captured, so that both can be shown on one timeline: an ftrace instance
// of its own on the host (instances/vtrace-host-PID), with the events and
// the trace clock asked for, read per CPU from trace_pipe_raw into
// cpuN.raw files of whole pages, the layout of a guest capture.
//
// Lifecycle: Start makes the instance and starts one goroutine per CPU;
// Mark may be called from any goroutine meanwhile; Stop turns tracing off,
// drains every CPU, reads the metadata, and removes the instance. Every
// path out of Start and Stop removes the instance; one left by a killed
// process (its PID gone) is removed by the next Start.
package hosttrace

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/vtrace/vtrace/host/meta"
	"github.com/vtrace/vtrace/internal/sys"
	"github.com/vtrace/vtrace/proto/ringbuf"
	"github.com/vtrace/vtrace/proto/tracefs"
	"github.com/vtrace/vtrace/proto/wire"
)

// DefaultTracefs is where the host's tracefs is looked for first.
const DefaultTracefs = "/sys/kernel/tracing"

// instancePrefix starts the name of every instance this package makes.
const instancePrefix = "vtrace-host-"

// pollEvery bounds how long a CPU's new events wait before they are read
// when its buffer fills slowly (the kernel wakes a reader when the buffer
// is buffer_percent full).
const pollEvery = time.Second

// Config says what to record.
type Config struct {
	Tracefs   string   // tracefs mount point; "" tries DefaultTracefs and /sys/kernel/debug/tracing
	Events    []string // "system" or "system:event", as --events spells them
	Clock     string   // trace clock ("": the instance's default, local)
	BufferKiB uint64   // per CPU; 0 leaves the kernel's default
	Out       string   // directory for cpuN.raw, made if missing
}

// Recorder is one recording in progress.
type Recorder struct {
	dir    string // the instance
	out    string
	layout ringbuf.Layout
	waker  *sys.Waker
	wg     sync.WaitGroup

	mu     sync.Mutex
	marker *os.File // the instance's trace_marker
	errs   []error  // of the CPU goroutines
	bytes  int64
}

// Start makes the instance, applies cfg, turns tracing on and starts
// reading. Its errors name what the host's tracefs refused.
func Start(cfg Config) (*Recorder, error) {
	root, err := findTracefs(cfg.Tracefs)
	if err != nil {
		return nil, err
	}
	if len(cfg.Events) == 0 {
		return nil, errors.New("record the host's events: no events given")
	}
	for _, e := range cfg.Events {
		if !validEvent(e) {
			return nil, fmt.Errorf("record the host's events: event %q: want system or system:event", e)
		}
	}
	if cfg.Clock != "" && !wire.ValidName(cfg.Clock) {
		return nil, fmt.Errorf("record the host's events: clock %q: not a clock name", cfg.Clock)
	}
	removeStale(root)
	r := &Recorder{dir: filepath.Join(root, "instances", instancePrefix+strconv.Itoa(os.Getpid())), out: cfg.Out}
	if err := os.Mkdir(r.dir, 0o755); err != nil {
		return nil, fmt.Errorf("record the host's events: make ftrace instance: %w", err)
	}
	if err := r.setup(cfg); err != nil {
		r.remove()
		return nil, fmt.Errorf("record the host's events: %w", err)
	}
	return r, nil
}

func (r *Recorder) setup(cfg Config) error {
	if err := os.MkdirAll(cfg.Out, 0o755); err != nil {
		return err
	}
	if err := r.write("tracing_on", "0"); err != nil {
		return err
	}
	if cfg.Clock != "" {
		if err := r.write("trace_clock", cfg.Clock); err != nil {
			avail, _ := os.ReadFile(filepath.Join(r.dir, "trace_clock"))
			return fmt.Errorf("clock %s: not offered by the host (trace_clock: %s)", cfg.Clock, strings.TrimSpace(string(avail)))
		}
	}
	if cfg.BufferKiB > 0 {
		if err := r.write("buffer_size_kb", strconv.FormatUint(cfg.BufferKiB, 10)); err != nil {
			return fmt.Errorf("buffer size %d KiB per CPU: %w", cfg.BufferKiB, err)
		}
	}
	for _, e := range cfg.Events {
		rel := filepath.Join("events", strings.Replace(e, ":", "/", 1), "enable")
		if err := r.write(rel, "1"); err != nil {
			if errors.Is(err, os.ErrNotExist) {
				return fmt.Errorf("event %s: not among the host's events (%s)", e, filepath.Join(r.dir, "events"))
			}
			return fmt.Errorf("event %s: %w", e, err)
		}
	}
	var err error
	if r.layout, err = ringbuf.LayoutFromTracefs(r.dir); err != nil {
		return err
	}
	if r.marker, err = os.OpenFile(filepath.Join(r.dir, "trace_marker"), os.O_WRONLY, 0); err != nil {
		return err
	}
	if r.waker, err = sys.NewWaker(); err != nil {
		return err
	}
	cpus, err := perCPU(r.dir)
	if err != nil {
		return err
	}
	fds := map[int]int{}
	for _, cpu := range cpus {
		fd, err := sys.Open(tracefs.PerCPU(r.dir, cpu, "trace_pipe_raw"), sys.ORdonly|sys.ONonblock, 0)
		if err != nil {
			for _, fd := range fds {
				sys.Close(fd)
			}
			return err
		}
		fds[cpu] = fd
	}
	if err := r.write("tracing_on", "1"); err != nil {
		for _, fd := range fds {
			sys.Close(fd)
		}
		return err
	}
	for cpu, fd := range fds {
		r.wg.Add(1)
		go r.read(cpu, fd)
	}
	return nil
}

// Dir is the instance's directory.
func (r *Recorder) Dir() string { return r.dir }

// Mark writes text into the instance's trace_marker (one event).
func (r *Recorder) Mark(text string) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.marker == nil {
		return errors.New("write a host marker: not recording")
	}
	_, err := r.marker.WriteString(text)
	return err
}

// read copies CPU cpu's pages into OUT/cpuN.raw until the waker fires,
// then drains what is left.
func (r *Recorder) read(cpu, fd int) {
	defer r.wg.Done()
	defer sys.Close(fd)
	fail := func(err error) {
		r.mu.Lock()
		r.errs = append(r.errs, fmt.Errorf("cpu%d: %w", cpu, err))
		r.mu.Unlock()
	}
	path := filepath.Join(r.out, "cpu"+strconv.Itoa(cpu)+".raw")
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o644)
	if err != nil {
		fail(err)
		return
	}
	page := make([]byte, r.layout.PageSize)
	drain := func() error {
		for {
			n, err := sys.Read(fd, page)
			if errors.Is(err, sys.EAGAIN) || err == nil && n == 0 {
				return nil
			}
			if err != nil {
				return err
			}
			if n != len(page) {
				return fmt.Errorf("read %d bytes of trace_pipe_raw, want a page of %d", n, len(page))
			}
			if _, err := f.Write(page); err != nil {
				return err
			}
			r.mu.Lock()
			r.bytes += int64(n)
			r.mu.Unlock()
		}
	}
	for {
		ev, _, err := sys.Poll(fd, sys.In, r.waker, pollEvery)
		if err != nil {
			fail(err)
			break
		}
		if err := drain(); err != nil {
			fail(err)
			break
		}
		if ev == sys.Woken {
			break
		}
	}
	if err := f.Sync(); err != nil {
		fail(err)
	}
	if err := f.Close(); err != nil {
		fail(err)
	}
}

// Stop turns tracing off, drains every CPU, reads the instance's metadata
// (formats, clock, the CPUs' stats, kallsyms and the host's uname), and
// removes the instance. The Set describes the files in Out.
func (r *Recorder) Stop() (*meta.Set, error) {
	defer r.remove()
	werr := r.write("tracing_on", "0")
	r.waker.Wake()
	r.wg.Wait()
	r.mu.Lock()
	errs := append([]error{werr}, r.errs...)
	r.mu.Unlock()
	if err := errors.Join(errs...); err != nil {
		return nil, fmt.Errorf("record the host's events: %w", err)
	}
	s, err := meta.FromTracefs(r.dir)
	if err != nil {
		return nil, fmt.Errorf("record the host's events: %w", err)
	}
	return s, nil
}

// Bytes counts the bytes of pages written so far.
func (r *Recorder) Bytes() int64 {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.bytes
}

// Abort stops reading and removes the instance; what was written stays.
func (r *Recorder) Abort() {
	r.write("tracing_on", "0")
	r.waker.Wake()
	r.wg.Wait()
	r.remove()
}

// remove releases the marker and the waker and removes the instance.
func (r *Recorder) remove() {
	r.mu.Lock()
	if r.marker != nil {
		r.marker.Close()
		r.marker = nil
	}
	r.mu.Unlock()
	r.waker.Close()
	r.write("events/enable", "0")
	os.Remove(r.dir)
}

func (r *Recorder) write(rel, val string) error {
	return os.WriteFile(filepath.Join(r.dir, rel), []byte(val), 0)
}

func findTracefs(dir string) (string, error) {
	cands := []string{dir}
	if dir == "" {
		cands = []string{DefaultTracefs, "/sys/kernel/debug/tracing"}
	}
	for _, d := range cands {
		if _, err := os.Stat(filepath.Join(d, "instances")); err == nil {
			return d, nil
		}
	}
	return "", fmt.Errorf("record the host's events: no tracefs with instances/ at %s; mount it with: mount -t tracefs nodev %s",
		strings.Join(cands, " or "), DefaultTracefs)
}

// removeStale removes instances of this package whose process is gone.
func removeStale(root string) {
	ents, err := os.ReadDir(filepath.Join(root, "instances"))
	if err != nil {
		return
	}
	for _, e := range ents {
		pid, err := strconv.Atoi(strings.TrimPrefix(e.Name(), instancePrefix))
		if !strings.HasPrefix(e.Name(), instancePrefix) || err != nil || pid <= 0 {
			continue
		}
		if _, err := os.Stat(filepath.Join("/proc", strconv.Itoa(pid))); errors.Is(err, os.ErrNotExist) {
			os.Remove(filepath.Join(root, "instances", e.Name()))
		}
	}
}

// perCPU lists the CPUs of an instance's per_cpu directory.
func perCPU(dir string) ([]int, error) {
	ents, err := os.ReadDir(filepath.Join(dir, "per_cpu"))
	if err != nil {
		return nil, err
	}
	var cpus []int
	for _, e := range ents {
		if cpu, ok := tracefs.CPUFromName(e.Name(), "cpu", ""); ok {
			cpus = append(cpus, cpu)
		}
	}
	if len(cpus) == 0 {
		return nil, fmt.Errorf("no CPUs in %s", filepath.Join(dir, "per_cpu"))
	}
	return cpus, nil
}

func validEvent(e string) bool {
	sysName, ev, ok := strings.Cut(e, ":")
	return wire.ValidName(sysName) && (!ok || wire.ValidName(ev))
}
