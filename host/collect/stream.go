package collect

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sync/atomic"
	"time"

	"github.com/vtrace/vtrace/host/fifo"
	"github.com/vtrace/vtrace/internal/sys"
	"github.com/vtrace/vtrace/proto/channel"
)

// spliceChunk is the most one splice(2) call moves.
const spliceChunk = 1 << 20

// reopenPause keeps a stream that keeps hitting end of file from spinning.
const reopenPause = 100 * time.Millisecond

// stream is one CPU's FIFO and capture file; one goroutine owns it.
type stream struct {
	cpu     int
	fifo    string
	file    string
	in, out int
	written atomic.Int64
	dropped int64
	late    bool  // still flowing when the drain timed out
	stale   int64 // bytes discarded before the start order (drainStale)
}

// openStreams opens every CPU's FIFO and creates its capture file.
func openStreams(cfg Config, cpus []int, sum *Summary) ([]*stream, error) {
	var streams []*stream
	fail := func(err error) ([]*stream, error) {
		closeStreams(streams, true)
		return nil, err
	}
	for _, cpu := range cpus {
		path := fifo.ReadPath(cfg.Dir, channel.Data(cpu))
		in, err := fifo.Open(path, sys.FIFOReadNonblock)
		if err != nil {
			return fail(fmt.Errorf("read CPU %d's stream: %w", cpu, err))
		}
		if _, err := fifo.SetBuffer(in, cfg.FIFOSize); err != nil {
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
		n, err := sys.Splice(s.in, s.out, spliceChunk, sys.SpliceNonblock)
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
				first = fmt.Errorf("cut %s to whole pages: %w", s.file, err)
			}
			s.dropped = size - keep
			s.written.Store(keep)
			sum.Notes = append(sum.Notes, fmt.Sprintf("CPU %d: cut a trailing partial page of %d bytes from %s", s.cpu, s.dropped, s.file))
		}
		if err := sys.Fsync(s.out); err != nil && first == nil {
			first = fmt.Errorf("make %s durable: %w", s.file, err)
		}
	}
	if err := sys.SyncDir(sum.Out); err != nil && first == nil {
		first = fmt.Errorf("make the capture directory durable: %w", err)
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
		if err := sys.Close(s.in); err != nil && first == nil {
			first = fmt.Errorf("finish reading %s: %w", s.fifo, err)
		}
		if err := sys.Close(s.out); err != nil && first == nil {
			first = fmt.Errorf("finish writing %s: %w", s.file, err)
		}
		if remove {
			os.Remove(s.file)
		}
	}
	return first
}
