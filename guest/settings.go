package guest

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/vtrace/vtrace/internal/sys"
	"github.com/vtrace/vtrace/proto/ringbuf"
	"github.com/vtrace/vtrace/proto/wire"
)

// DefaultInstance is the ftrace instance the agent records in when the
// host chooses what to trace.
const DefaultInstance = "vtrace"

// DefaultBufferPercent is the buffer_percent set while recording: the
// kernel wakes a trace_pipe_raw poller only when that much of the buffer
// is full (its default, 50, lost events under heavy load).
const DefaultBufferPercent = 10

// DefaultStateDir holds the agent's markers of the instances it made, so
// that a later run knows a leftover instance (after a kill) for its own.
const DefaultStateDir = "/run/vtrace"

// settingsError is a Start the host asked for that cannot be done: it is
// answered, not fatal.
type settingsError struct{ err error }

func (e *settingsError) Error() string { return e.err.Error() }
func (e *settingsError) Unwrap() error { return e.err }

func settingsErrorf(format string, args ...any) error {
	return &settingsError{fmt.Errorf(format, args...)}
}

// recording is what one recording set up, and how to undo it.
type recording struct {
	settings wire.Settings
	dir      string   // the tracefs directory streamed
	instance string   // the instance the agent made for it; "" for none
	lock     *dirLock // on the instance
	restore  []saved
	// watermark is the buffer_percent written for it (see watermark);
	// negative: left alone.
	watermark int
	layout    ringbuf.Layout  // of dir, read at the start
	base      []wire.CPUStats // counters when the recording began
	cpus      cpuPlan         // the CPUs it streams, and those it does not
}

// since turns the kernel's lifetime counters into this recording's: the
// top-level buffer (and a reused one) carries overruns and reads from
// before the start, which are not this capture's losses. Entries, bytes
// and times describe the buffer now and stay as read; Raw stays the
// kernel's text, for trace.dat's CPUSTAT.
func (r *recording) since(cur []wire.CPUStats) []wire.CPUStats {
	sub := func(a, b uint64) uint64 {
		if a < b {
			return a // the buffer was reset (e.g. resized): its counters restarted
		}
		return a - b
	}
	for i := range cur {
		for _, b := range r.base {
			if b.CPU != cur[i].CPU {
				continue
			}
			c := &cur[i]
			c.Overrun = sub(c.Overrun, b.Overrun)
			c.CommitOverrun = sub(c.CommitOverrun, b.CommitOverrun)
			c.DroppedEvents = sub(c.DroppedEvents, b.DroppedEvents)
			c.ReadEvents = sub(c.ReadEvents, b.ReadEvents)
			c.BytesSent = sub(c.BytesSent, b.BytesSent)
			c.PagesSent = sub(c.PagesSent, b.PagesSent)
		}
	}
	return cur
}

// saved is a tracefs value to put back when the recording ends.
type saved struct{ path, value string }

// prepare sets up what s asks for and returns the recording; on error
// nothing it did stays.
func (a *Agent) prepare(s wire.Settings) (*recording, error) {
	if s.IsZero() { // stream the default buffer as is, but for --subbuf-size
		r := &recording{settings: s, dir: a.tracefs, watermark: a.cfg.BufferPercent}
		if kib := a.cfg.SubbufKiB; kib > 0 {
			if err := a.checkSubbuf(kib); err != nil {
				return nil, err
			}
			old, err := setSubbuf(a.tracefs, kib)
			if err != nil {
				return nil, err
			}
			if old != strconv.FormatUint(uint64(kib), 10) {
				r.restore = append(r.restore, saved{filepath.Join(a.tracefs, subbufFile), old})
			}
		}
		if a.cfg.BufferPercent >= 0 {
			p := filepath.Join(a.tracefs, "buffer_percent")
			old, err := os.ReadFile(p)
			if err != nil {
				a.log.Debug("no buffer_percent: left as the kernel has it", "err", err)
				return r, nil
			}
			r.watermark = watermark(a.tracefs, a.cfg.BufferPercent, a.cfg.PipeSize)
			if err := writeFile(p, strconv.Itoa(r.watermark)); err != nil {
				a.finish(r)
				return nil, settingsErrorf("set %s to %d: %w", p, r.watermark, err)
			}
			r.restore = append(r.restore, saved{p, strings.TrimSpace(string(old))})
		}
		return r, nil
	}
	name := s.Instance
	if name == "" {
		name = a.cfg.Instance
	}
	if err := a.checkSettings(s); err != nil {
		return nil, err
	}
	instances := filepath.Join(a.root, "instances")
	if !isDir(instances) {
		return nil, settingsErrorf("record in instance %s: %s missing (the kernel has no ftrace instances)", name, instances)
	}
	dir := filepath.Join(instances, name)
	if dir == filepath.Clean(a.tracefs) {
		return nil, settingsErrorf("record in instance %s: it is the agent's --tracefs, which it streams as is; choose another instance", name)
	}
	if exists(dir) {
		if !a.ownsInstance(name) {
			return nil, settingsErrorf("record in instance %s: %s exists and is not the agent's; choose another instance or remove it", name, dir)
		}
		// Made by a vtrace agent: one that still runs holds its lock.
		l, err := lockDir(dir)
		if err != nil {
			return nil, settingsErrorf("record in instance %s: %w; choose another instance", name, err)
		}
		l.Close()
		a.log.Info("removing the agent's instance left by an earlier run", "instance", name)
		if err := removeInstance(dir); err != nil {
			return nil, settingsErrorf("remove the agent's old instance %s: %w", name, err)
		}
	}
	if err := os.Mkdir(dir, 0o755); err != nil {
		return nil, settingsErrorf("create instance %s: %w", dir, err)
	}
	r := &recording{settings: s, dir: dir, instance: name}
	// Locked before it is marked the agent's: another agent finding it
	// meanwhile takes it for someone else's and leaves it alone.
	var err error
	if r.lock, err = lockDir(dir); err != nil {
		a.finish(r)
		return nil, settingsErrorf("record in instance %s: %w", name, err)
	}
	a.markInstance(name)
	if err := a.apply(r); err != nil {
		a.finish(r)
		return nil, err
	}
	return r, nil
}

// checkSettings checks events, filters, the clock and the sub-buffer size
// against what the guest's tracefs offers, before anything is changed.
func (a *Agent) checkSettings(s wire.Settings) error {
	if err := a.checkSubbuf(a.subbufKiB(s)); err != nil {
		return err
	}
	if len(s.Events) > 0 || len(s.Filters) > 0 {
		avail, err := os.ReadFile(filepath.Join(a.root, "available_events"))
		if err != nil {
			return settingsErrorf("read available_events: %w", err)
		}
		events, systems := map[string]bool{}, map[string]bool{}
		sc := bufio.NewScanner(bytes.NewReader(avail))
		for sc.Scan() {
			line := strings.TrimSpace(sc.Text())
			if sys, _, ok := strings.Cut(line, ":"); ok {
				events[line] = true
				systems[sys] = true
			}
		}
		known := func(e string) bool {
			if strings.Contains(e, ":") {
				return events[e]
			}
			return systems[e]
		}
		for _, e := range s.Events {
			if !known(e) {
				return settingsErrorf("event %s: not in the guest's available_events", e)
			}
		}
		for _, f := range s.Filters {
			if !known(f.Event) {
				return settingsErrorf("filter on %s: no such event in the guest's available_events", f.Event)
			}
		}
	}
	if s.Clock != "" {
		b, err := os.ReadFile(filepath.Join(a.root, "trace_clock"))
		if err != nil {
			return settingsErrorf("read trace_clock: %w", err)
		}
		clocks := strings.Fields(strings.NewReplacer("[", "", "]", "").Replace(string(b)))
		found := false
		for _, c := range clocks {
			found = found || c == s.Clock
		}
		if !found {
			return settingsErrorf("clock %s: not offered by the guest (trace_clock: %s)", s.Clock, strings.Join(clocks, " "))
		}
	}
	return nil
}

// apply writes r's settings into its fresh instance: sub-buffer size
// (before the buffer size, which the kernel rounds to whole sub-buffers),
// buffer size, clock, filters, buffer_percent (r.watermark, taken from
// the buffer size just written), and the events last, so that nothing
// unfiltered is recorded.
func (a *Agent) apply(r *recording) error {
	dir, s := r.dir, r.settings
	if kib := a.subbufKiB(s); kib > 0 {
		if _, err := setSubbuf(dir, kib); err != nil {
			return err
		}
	}
	if s.BufferKiB > 0 {
		if err := writeFile(filepath.Join(dir, "buffer_size_kb"), strconv.FormatUint(s.BufferKiB, 10)); err != nil {
			return settingsErrorf("buffer size %d KiB per CPU: %w", s.BufferKiB, errnoOf(err))
		}
	}
	if s.Clock != "" {
		if err := writeFile(filepath.Join(dir, "trace_clock"), s.Clock); err != nil {
			return settingsErrorf("clock %s: %w", s.Clock, errnoOf(err))
		}
	}
	for _, f := range s.Filters {
		if err := setFilter(dir, f); err != nil {
			return err
		}
	}
	if r.watermark = watermark(dir, a.cfg.BufferPercent, a.cfg.PipeSize); r.watermark >= 0 {
		if err := writeFile(filepath.Join(dir, "buffer_percent"), strconv.Itoa(r.watermark)); err != nil && !errors.Is(err, os.ErrNotExist) {
			return settingsErrorf("set buffer_percent to %d: %w", r.watermark, errnoOf(err))
		}
	}
	for _, e := range s.Events {
		if err := writeFile(filepath.Join(dir, "events", eventPath(e), "enable"), "1"); err != nil {
			return settingsErrorf("enable event %s: %w", e, errnoOf(err))
		}
	}
	return nil
}

// eventPath turns "sys:event" or "sys" into the path under events/.
func eventPath(e string) string {
	sys, ev, ok := strings.Cut(e, ":")
	if !ok {
		return sys
	}
	return filepath.Join(sys, ev)
}

// setFilter writes one filter. The kernel refuses a bad expression on an
// event with EINVAL and explains in the event's filter file. On a whole
// system it applies the filter to the events that have its fields and
// explains in the filter file of each other event: the filter is refused
// only when no event of the system took it.
func setFilter(dir string, f wire.Filter) error {
	path := filepath.Join(dir, "events", eventPath(f.Event), "filter")
	werr := writeFile(path, f.Expr)
	if werr != nil && !errors.Is(werr, sys.EINVAL) {
		return settingsErrorf("filter on %s %q: %w", f.Event, f.Expr, errnoOf(werr))
	}
	var why string
	if strings.Contains(f.Event, ":") || werr != nil {
		b, _ := readSmall(path, 64<<10)
		why = parseErrorOf(string(b))
		if why == "" && werr != nil {
			if why = errorLogTail(dir); why == "" {
				why = "invalid argument"
			}
		}
	} else {
		files, _ := filepath.Glob(filepath.Join(dir, "events", f.Event, "*", "filter"))
		taken := false
		for _, ef := range files {
			b, _ := readSmall(ef, 64<<10)
			if w := parseErrorOf(string(b)); w != "" {
				why = w
			} else {
				taken = true
			}
		}
		if taken {
			why = ""
		} else if why == "" {
			why = "no event of the system took it"
		}
	}
	if why != "" {
		return settingsErrorf("filter on %s %q: %s", f.Event, f.Expr, why)
	}
	return nil
}

// parseErrorOf returns the kernel's explanation in a filter file
// ("parse_error: ..."), or "".
func parseErrorOf(s string) string {
	for _, line := range strings.Split(s, "\n") {
		if _, why, ok := strings.Cut(line, "parse_error:"); ok {
			return strings.TrimSpace(why)
		}
	}
	return ""
}

// errorLogTail is the last lines of the instance's error_log.
func errorLogTail(dir string) string {
	b, err := readSmall(filepath.Join(dir, "error_log"), 1<<20)
	if err != nil {
		return ""
	}
	lines := strings.Split(strings.TrimSpace(string(b)), "\n")
	return strings.TrimSpace(strings.Join(lines[max(0, len(lines)-3):], " "))
}

// errnoOf drops the path from an *os.PathError: the message names the
// setting instead.
func errnoOf(err error) error {
	var pe *os.PathError
	if errors.As(err, &pe) {
		return pe.Err
	}
	return err
}

// finish undoes what prepare did: the instance is removed, saved values
// are put back. The CPU goroutines must have let go of the instance.
func (a *Agent) finish(r *recording) error {
	var first error
	if r.instance != "" {
		if err := removeInstance(filepath.Join(a.root, "instances", r.instance)); err != nil {
			first = fmt.Errorf("remove instance %s: %w", r.instance, err)
			a.log.Warn("could not remove the agent's instance", "instance", r.instance, "err", err)
		} else {
			a.unmarkInstance(r.instance)
		}
		r.lock.Close()
	}
	for i := len(r.restore) - 1; i >= 0; i-- {
		s := r.restore[i]
		if err := writeFile(s.path, s.value); err != nil {
			a.log.Warn("could not restore", "file", s.path, "value", s.value, "err", err)
			if first == nil {
				first = fmt.Errorf("restore %s to %s: %w", s.path, s.value, err)
			}
		}
	}
	return first
}

// removeInstance stops an instance and removes it. The kernel refuses
// (EBUSY) while a file of it is open; files closed by another thread may
// take a moment to let go.
func removeInstance(dir string) error {
	writeFile(filepath.Join(dir, "tracing_on"), "0")
	var err error
	for wait := time.Millisecond; ; wait *= 2 {
		if err = os.Remove(dir); err == nil || errors.Is(err, os.ErrNotExist) {
			return nil
		}
		if !errors.Is(err, sys.EBUSY) || wait > 500*time.Millisecond {
			return err
		}
		time.Sleep(wait)
	}
}

// Markers of the instances the agent made: STATEDIR/instance-NAME.
func (a *Agent) markerPath(name string) string {
	return filepath.Join(a.cfg.StateDir, "instance-"+name)
}

func (a *Agent) markInstance(name string) {
	if err := os.MkdirAll(a.cfg.StateDir, 0o755); err != nil {
		a.log.Debug("no state directory: a leftover instance will not be known for the agent's", "err", err)
		return
	}
	if err := os.WriteFile(a.markerPath(name), []byte(strconv.Itoa(os.Getpid())+"\n"), 0o644); err != nil {
		a.log.Debug("could not mark the instance as the agent's", "err", err)
	}
}

func (a *Agent) unmarkInstance(name string) { os.Remove(a.markerPath(name)) }

func (a *Agent) ownsInstance(name string) bool { return exists(a.markerPath(name)) }
