package guest

// The latency bound without idle wake-ups: buffer_percent of the directory
// streamed is 0 while every CPU's buffer is empty, and the watermark while
// any holds unsent events.

import (
	"log/slog"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

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
	log     *slog.Logger
	percent int // the watermark; negative: buffer_percent is left alone

	mu      sync.Mutex
	workers []*worker     // the recording's
	latency time.Duration // of the recording; 0: no bound
	path    string        // buffer_percent to switch; "": none
	holders int           // CPUs holding unsent events
	zero    atomic.Bool   // buffer_percent is 0: an empty CPU may wait without timeout
}

func newPacer(percent int, log *slog.Logger) *pacer {
	return &pacer{percent: percent, log: log}
}

// begin sets up a recording of dir by workers with latency (0: no
// bound). The recording's setup has written the watermark to
// buffer_percent (or left it alone, percent < 0); every CPU starts holding
// events (see worker.begin).
func (p *pacer) begin(dir string, latency time.Duration, workers []*worker) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.latency, p.path, p.holders, p.workers = latency, "", 0, workers
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

// latency is the bound a recording with settings s has: the host's, else
// the agent's own; 0 for none.
func (a *Agent) latency(s wire.Settings) time.Duration {
	d := a.cfg.Latency
	if s.LatencyMS > 0 {
		d = time.Duration(s.LatencyMS) * time.Millisecond
	}
	return max(d, 0)
}
