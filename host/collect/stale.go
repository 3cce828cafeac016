package collect

import (
	"errors"
	"fmt"
	"time"

	"github.com/vtrace/vtrace/internal/sys"
)

// drainStale empties the data FIFOs before a start order: whatever sits in
// them is an earlier recording's (pages a stop pushed after its collector
// died, or that nobody read), and a capture holds its own recording only.
// qemu may still hold more of it than the FIFO takes, so once anything
// came, the FIFOs must stay quiet for settle before the start goes out.
// Each stream's discarded bytes go to its stale counter. It gives up, with
// an error, when the FIFOs are still not quiet at limit: something is
// recording already.
func drainStale(streams []*stream, settle time.Duration, limit time.Time) error {
	buf := make([]byte, spliceChunk)
	for {
		moved := int64(0)
		for _, s := range streams {
			for {
				n, err := sys.Read(s.in, buf)
				if n > 0 {
					s.stale += int64(n)
					moved += int64(n)
					continue
				}
				if err == nil || errors.Is(err, sys.EAGAIN) {
					break // empty (or no writer at all)
				}
				return fmt.Errorf("empty CPU %d's FIFO %s before the start: %w", s.cpu, s.fifo, err)
			}
		}
		if moved == 0 {
			return nil
		}
		// Something came: wait for the FIFOs to stay quiet for settle.
		quietUntil := time.Now().Add(settle)
		if quietUntil.After(limit) {
			return fmt.Errorf("empty the FIFOs before the start: data keeps coming (%d bytes discarded): is the agent already recording? stop it first (vtrace host stop)", totalStale(streams))
		}
		for _, s := range streams {
			wait := time.Until(quietUntil)
			if wait <= 0 {
				break
			}
			ev, _, err := sys.Poll(s.in, sys.In, nil, wait)
			if err != nil {
				return fmt.Errorf("wait on CPU %d's FIFO before the start: %w", s.cpu, err)
			}
			if ev == sys.Ready {
				break // another round
			}
		}
	}
}

func totalStale(streams []*stream) int64 {
	var n int64
	for _, s := range streams {
		n += s.stale
	}
	return n
}

// staleNotes says, per CPU, what drainStale discarded.
func staleNotes(streams []*stream, sum *Summary) {
	for _, s := range streams {
		if s.stale > 0 {
			sum.Notes = append(sum.Notes, fmt.Sprintf("CPU %d: discarded %d bytes an earlier recording left in %s before the start: not part of this capture", s.cpu, s.stale, s.fifo))
		}
	}
}
