package guest

import (
	"errors"
	"fmt"
	"os"
	"sync"
	"time"

	"github.com/vtrace/vtrace/internal/textlog"
	"github.com/vtrace/vtrace/proto/wire"
)

// DefaultReplyQueue bounds the frames waiting to be written to the host.
const DefaultReplyQueue = 4 << 20

// replyStall is how long metadata waits for room in a full queue, without
// the host reading a byte, before the agent gives it up: the host has
// stopped reading the control port. Until the host reads again, metadata
// is then given up at once.
const replyStall = 5 * time.Second

// errNotReading: a reply was given up because the host does not read.
var errNotReading = errors.New("the host does not read the control port")

// ctlOut writes frames to the host from its own goroutine, so that neither
// the control loop nor (above all) the CPU goroutines ever wait for the
// host. Frames queue up to max bytes; when the queue is full, the oldest
// Stats are dropped first, and a reply waits for room (up to replyStall).
type ctlOut struct {
	f    *os.File // nil: nowhere to reply (frames are counted and dropped)
	path string
	max  int
	log  *textlog.Logger

	mu      sync.Mutex
	queue   []outFrame
	bytes   int
	closed  bool
	wake    chan struct{} // the writer has something to do
	room    chan struct{} // the writer made room
	done    chan struct{} // the writer ended
	dropped int           // Stats frames dropped
	stalled bool          // a wait for room timed out; cleared when a write ends
}

type outFrame struct {
	b     []byte
	stats bool
	late  func() []byte // when not nil, gives the bytes to write instead of b, as they are written (clock.go)
}

func newCtlOut(f *os.File, path string, max int, log *textlog.Logger) *ctlOut {
	o := &ctlOut{f: f, path: path, max: max, log: log,
		wake: make(chan struct{}, 1), room: make(chan struct{}, 1), done: make(chan struct{})}
	go o.run()
	return o
}

// send queues m. When the queue is full, the oldest Stats are dropped to
// make room. Metadata (MetaChunk, MetaEnd) then waits for room while the
// host reads, giving up after replyStall without progress or as soon as
// stop or abort closes (the agent is told to exit: a slow but steady host
// must not hold it for a whole transfer); anything else is dropped and
// logged: the control loop never waits for a host that does not read.
func (o *ctlOut) send(m wire.Message, stop, abort <-chan struct{}) error {
	b, err := wire.AppendMessage(nil, m)
	if err != nil {
		return fmt.Errorf("encode %v: %w", m.Type(), err)
	}
	stats := m.Type() == wire.TypeStats
	wait := m.Type() == wire.TypeMetaChunk || m.Type() == wire.TypeMetaEnd
	stall := time.NewTimer(replyStall)
	defer stall.Stop()
	for {
		o.mu.Lock()
		if queued, err := o.queueLocked(outFrame{b: b, stats: stats}, m.Type()); queued || err != nil {
			o.mu.Unlock()
			return err
		}
		if stats {
			o.dropped++
			n := o.dropped
			o.mu.Unlock()
			o.log.Warn("control port: the host is not reading, stats dropped", "dropped", n)
			return nil
		}
		if !wait || o.stalled {
			o.mu.Unlock()
			return fmt.Errorf("send %v: %w (%d bytes queued)", m.Type(), errNotReading, o.max)
		}
		o.mu.Unlock()
		select {
		case <-o.room:
			stall.Reset(replyStall)
		case <-stall.C:
			o.mu.Lock()
			o.stalled = true
			o.mu.Unlock()
			return fmt.Errorf("send %v: %w (%d bytes waiting for %v)", m.Type(), errNotReading, o.queued(), replyStall)
		case <-stop:
			return fmt.Errorf("send %v: given up: the agent is stopping", m.Type())
		case <-abort:
			return fmt.Errorf("send %v: given up", m.Type())
		case <-o.done:
			return fmt.Errorf("send %v: control port closed", m.Type())
		}
	}
}

// queueLocked, with o.mu held, queues f (a message of type t) when it
// fits, after dropping queued Stats to make room, or when the queue is
// empty, and wakes the writer. It reports whether f was queued; the error
// is a closed port.
func (o *ctlOut) queueLocked(f outFrame, t wire.Type) (bool, error) {
	if o.closed {
		return false, fmt.Errorf("send %v: control port closed", t)
	}
	if o.bytes+len(f.b) > o.max {
		o.dropStats(len(f.b))
	}
	if o.bytes+len(f.b) > o.max && len(o.queue) > 0 {
		return false, nil
	}
	o.queue = append(o.queue, f)
	o.bytes += len(f.b)
	select {
	case o.wake <- struct{}{}:
	default:
	}
	return true, nil
}

// dropStats removes queued Stats, oldest first, until need more bytes fit;
// the frame being written (queue[0]) stays.
func (o *ctlOut) dropStats(need int) {
	for i := 1; i < len(o.queue) && o.bytes+need > o.max; {
		if !o.queue[i].stats {
			i++
			continue
		}
		o.bytes -= len(o.queue[i].b)
		o.queue = append(o.queue[:i], o.queue[i+1:]...)
		o.dropped++
		o.log.Warn("control port: the host is not reading, oldest stats dropped", "dropped", o.dropped)
	}
}

func (o *ctlOut) queued() int {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.bytes
}

// run writes queued frames one after another. A write waits in the Go
// runtime's poller for the host to read; close ends it.
func (o *ctlOut) run() {
	defer close(o.done)
	for {
		o.mu.Lock()
		for len(o.queue) == 0 {
			if o.closed {
				o.mu.Unlock()
				return
			}
			o.mu.Unlock()
			<-o.wake
			o.mu.Lock()
		}
		b, late := o.queue[0].b, o.queue[0].late
		o.mu.Unlock()
		var err error
		if o.f != nil {
			w := b
			if late != nil {
				w = late()
			}
			_, err = o.f.Write(w)
		}
		o.mu.Lock()
		o.queue[0] = outFrame{}
		o.queue = o.queue[1:]
		o.bytes -= len(b)
		o.stalled = false
		o.mu.Unlock()
		select {
		case o.room <- struct{}{}:
		default:
		}
		if err != nil {
			if !errors.Is(err, os.ErrClosed) {
				o.log.Warn("control port: write failed, replies stop", "path", o.path, "err", err)
			}
			o.mu.Lock()
			o.closed = true
			o.queue, o.bytes = nil, 0
			o.mu.Unlock()
			return
		}
	}
}

// close stops the writer; what is queued is dropped. The file is closed
// by its owner (which also ends a write in progress).
func (o *ctlOut) close() {
	o.mu.Lock()
	o.closed = true
	o.mu.Unlock()
	select {
	case o.wake <- struct{}{}:
	default:
	}
}
