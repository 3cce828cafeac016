package guest

// The latency bound without idle wake-ups: buffer_percent of the directory
// streamed is 0 while every CPU's buffer is empty, and the watermark while
// any holds unsent events.

import (
	"errors"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/vtrace/vtrace/internal/sys"
	"github.com/vtrace/vtrace/internal/textlog"
	"github.com/vtrace/vtrace/proto/wire"
)

// DefaultLatency bounds how long an event recorded waits in the ring
// buffer before it is sent.
const DefaultLatency = time.Second

// pacer keeps buffer_percent of the directory streamed at 0 while every
// CPU's buffer is empty and at the watermark while any CPU holds unsent
// events. The kernel reads buffer_percent when a poller of trace_pipe_raw
// registers (ring_buffer_poll_wait): at 0 the poll wakes on the first
// event (a CPU whose buffer is empty waits with no timeout, so an idle
// agent makes no wake-ups); above 0 it wakes once that much of the buffer
// is full (batches, and room left for the writer while the agent is woken).
// A CPU that holds events waits for the watermark or its latency, whichever
// comes first; a CPU that is empty while buffer_percent is not 0 waits at
// most its latency, since the first event would not wake it. Every change
// from 0 to the watermark wakes the CPU goroutines, so that none waits
// without a timeout on a buffer_percent it no longer has.
//
// The CPU goroutines call hold and release; the order API calls begin
// before a start order, while no CPU streams.
type pacer struct {
	log     *textlog.Logger
	percent int // the recording's watermark; negative: buffer_percent is left alone

	mu      sync.Mutex
	workers []*worker     // the recording's
	latency time.Duration // of the recording; 0: no bound
	path    string        // buffer_percent to switch; "": none
	holders int           // CPUs holding unsent events
	zero    atomic.Bool   // buffer_percent is 0: an empty CPU may wait without timeout
}

func newPacer(log *textlog.Logger) *pacer {
	return &pacer{log: log}
}

// begin sets up a recording of dir by workers with latency (0: no
// bound). The recording's setup has written the watermark percent to
// buffer_percent (or left it alone, percent < 0); every CPU starts holding
// events (see worker.begin).
func (p *pacer) begin(dir string, latency time.Duration, percent int, workers []*worker) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.latency, p.path, p.holders, p.workers, p.percent = latency, "", 0, workers, percent
	p.zero.Store(false)
	file := filepath.Join(dir, "buffer_percent")
	switch b, err := os.ReadFile(file); {
	case err != nil: // no buffer_percent: the poll wakes on any data (before Linux 6.1)
		p.zero.Store(true)
	case p.percent < 0: // left alone: only a buffer_percent of 0 wakes on the first event
		p.zero.Store(strings.TrimSpace(string(b)) == "0")
	case latency > 0 && p.percent > 0:
		p.path = file
	}
}

// hold counts w as holding unsent events; the first such CPU raises
// buffer_percent to the watermark and wakes the others.
func (p *pacer) hold(w *worker) {
	if w.holding {
		return
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	w.holding = true
	p.holders++
	if p.holders > 1 || p.path == "" || !p.zero.Load() {
		return
	}
	p.set(p.percent)
	p.zero.Store(false)
	for _, o := range p.workers {
		if o != w {
			o.waker.Wake()
		}
	}
}

// release counts w as empty; the last one lowers buffer_percent to 0.
func (p *pacer) release(w *worker) {
	if !w.holding {
		return
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	w.holding = false
	p.holders--
	if p.holders > 0 || p.path == "" || p.zero.Load() {
		return
	}
	if p.set(0) {
		p.zero.Store(true)
	}
}

// set writes n to buffer_percent; on failure the pacer stops switching
// (the watermark stays, and an empty CPU then waits at most its latency).
func (p *pacer) set(n int) bool {
	if err := writeFile(p.path, strconv.Itoa(n)); err != nil {
		p.log.Warn("could not set buffer_percent: idle CPUs will wake at every latency period", "path", p.path, "err", err)
		p.path = ""
		return false
	}
	return true
}

// watermark is the buffer_percent a recording of dir writes: percent, but
// at most the share of a CPU's buffer (buffer_size_kb) that one pipe of
// pipeSize bytes holds, and at least 1; percent < 0 (leave it alone) as
// is. Each wake-up at the watermark then finds about one pipe of pages,
// which go in one splice into the pipe and one out of it: with a 16 MiB
// buffer and a 1 MiB pipe, 6% instead of 10% made the agent's MB per CPU
// second 25% higher at the benchmark's quarter load (fewer wake-ups per
// MB: none for a second half-batch, no wait that outlasts rawWait), and
// the earlier wake-up leaves the writer more room.
func watermark(dir string, percent, pipeSize int) int {
	if percent <= 0 {
		return percent
	}
	b, err := os.ReadFile(filepath.Join(dir, "buffer_size_kb"))
	if err != nil {
		return percent
	}
	// "1410", or "7 (expanded: 1408)" before the buffer is first used
	f := strings.Fields(string(b))
	kib, err := strconv.Atoi(strings.Join(f[:min(len(f), 1)], ""))
	if err != nil || kib <= 0 {
		return percent
	}
	return max(1, min(percent, pipeSize*100/(kib*1024)))
}

// latency is the bound a recording with settings s has: the host's, else
// the agent's own; 0 for none.
func (a *Agent) latency(s wire.Settings) time.Duration {
	d := a.cfg.Latency
	if s.LatencyMS > 0 {
		d = time.Duration(s.LatencyMS) * time.Millisecond
	}
	return max(d, 0)
}

// The latency bound on a CPU's side: a stream's start, its due time, and
// the catch-up that sends the page being written.

// begin starts a recording's stream: everything the buffer holds is sent
// at once (the first step catches up), then the stream waits.
func (w *worker) begin() {
	w.latency = w.pace.latency
	w.ref = time.Now().Add(-w.latency)
	w.clean, w.blocked, w.stuck = false, false, false
	w.dryAt = time.Time{}
	w.stall = backoff{}
	w.pace.hold(w)
}

// end is the stream's end, once the stop's drain is done.
func (w *worker) end() { w.pace.release(w) }

// due is when the events recorded at ref must go.
func (w *worker) due() time.Time { return w.ref.Add(w.latency - w.latency/10) }

// catchUp sends everything recorded so far without waiting: the full
// pages, then the page being written, read(2) into the pipe as a whole
// page (the kernel copies out its events and hands out the rest of that
// page later, starting after them: ring_buffer_read_page), and again while
// the page read was a finished one. The buffer is then clean as of that
// read. A full sink ends it early: the rest goes once there is room.
func (w *worker) catchUp() error {
	for {
		if err := w.pump(); err != nil || w.blocked {
			return err
		}
		t := time.Now()
		n, err := sys.Read(w.trace, w.buf)
		switch {
		case errors.Is(err, sys.EAGAIN), err == nil && n == 0: // empty (0: a read that raced the writer)
			w.markClean(t)
			return nil
		case err != nil:
			return opError(w.cpu, "read", w.tracePath, err)
		}
		clear(w.buf[n:]) // a short read still goes out as a whole page
		if err := w.toPipe(w.buf); err != nil {
			return err
		}
		if !finished(w.layout, w.buf) {
			w.partial++
			w.markClean(t)
			return w.pump()
		}
	}
}

// toPipe puts page into the pipe, which pump has emptied.
func (w *worker) toPipe(page []byte) error {
	for b := page; len(b) > 0; {
		n, err := sys.Write(w.pipeW, b)
		if err != nil {
			return opError(w.cpu, "write", "pipe", err)
		}
		b = b[n:]
	}
	w.inPipe += len(page)
	return nil
}

// markClean notes that nothing recorded before t is left in the ring buffer.
func (w *worker) markClean(t time.Time) {
	w.clean, w.ref, w.dryAt, w.stuck = true, t, t, false
	w.pace.release(w)
}
