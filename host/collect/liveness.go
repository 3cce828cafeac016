package collect

// A guest that goes away mid-capture. The host notices it without asking
// anything of a guest that is well:
//   - qemu exited (it is the only reader of the control FIFO DIR/agent-ctl-path.in:
//     an open for writing fails with ENXIO once it is gone, checked every
//     second on the host);
//   - Config.Alive says so (a libvirt domain that is no longer running);
//   - the agent stopped answering (a guest kernel that panicked leaves qemu
//     running): when neither a page nor a control frame came for
//     Config.QuietCheck (the agent sends Stats every few seconds while it
//     records, so this happens only to a quiet or dead guest), one status
//     request goes out, and no answer within Config.AliveTimeout means gone.
// The capture then ends by itself: no stop order (nobody would answer),
// the FIFOs drained of what qemu wrote before, the files cut to whole
// pages, the metadata it has, trace.dat written, and Summary.Gone.

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/vtrace/vtrace/host/fifo"
	"github.com/vtrace/vtrace/host/orders"
	"github.com/vtrace/vtrace/host/session"
	"github.com/vtrace/vtrace/internal/sys"
)

// Defaults of the liveness checks (Config).
const (
	DefaultQuietCheck   = 3 * time.Second
	DefaultAliveTimeout = 5 * time.Second
	// peerCheckEvery is how often the host looks for qemu's end of the
	// control FIFO and calls Config.Alive: host work only.
	peerCheckEvery = time.Second
)

// ErrGuestGone is returned (wrapped) by Run when the guest went away
// mid-capture; the Summary is complete and says when (Summary.Gone).
var ErrGuestGone = errors.New("the guest went away")

// Gone is when and how a guest went away mid-capture.
type Gone struct {
	At  time.Time
	Why string
}

// liveness watches one guest while it records.
type liveness struct {
	ctlIn string                      // DIR/agent-ctl-path.in
	alive func(context.Context) error // Config.Alive
	gone  chan struct{}               // closed once the guest went away

	once sync.Once
	mu   sync.Mutex
	g    Gone

	cancel context.CancelFunc
	done   sync.WaitGroup
}

func newLiveness(cfg Config) *liveness {
	return &liveness{ctlIn: orders.Path(cfg.Dir), alive: cfg.Alive, gone: make(chan struct{})}
}

// report says the guest went away; the first report wins.
func (l *liveness) report(why string) {
	if l == nil {
		return
	}
	l.once.Do(func() {
		l.mu.Lock()
		l.g = Gone{At: time.Now(), Why: why}
		l.mu.Unlock()
		close(l.gone)
	})
}

// reportExit says qemu exited.
func (l *liveness) reportExit() {
	l.report("qemu exited: nobody holds the guest's end of the control channel " + l.ctlIn + " any more")
}

// peerExited checks once for qemu's exit (as watch does), and reports it.
func (l *liveness) peerExited() bool {
	if has, err := hasReader(l.ctlIn); err == nil && !has {
		l.reportExit()
	}
	return l.isGone()
}

// what is the first report.
func (l *liveness) what() Gone {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.g
}

// watch starts the host's checks, as the start order goes out.
func (l *liveness) watch(cfg Config) {
	ctx, cancel := context.WithCancel(context.Background())
	l.cancel = cancel
	l.done.Add(1)
	go func() {
		defer l.done.Done()
		// qemu held the control FIFO once: its absence now means it
		// exited. With Start it did (the start order went through it).
		seen := cfg.Start
		t := time.NewTicker(peerCheckEvery)
		defer t.Stop()
		for first := true; ; first = false {
			if !first {
				select {
				case <-ctx.Done():
					return
				case <-l.gone:
					return
				case <-t.C:
				}
			}
			if has, err := hasReader(l.ctlIn); err == nil && has {
				seen = true
			} else if err == nil && seen {
				l.reportExit()
				return
			}
			if l.alive != nil {
				actx, acancel := context.WithTimeout(ctx, cfg.AliveTimeout)
				err := l.alive(actx)
				acancel()
				if err != nil && ctx.Err() == nil {
					l.report(err.Error())
					return
				}
			}
		}
	}()
}

// close ends the host's checks.
func (l *liveness) close() {
	if l.cancel != nil {
		l.cancel()
		l.done.Wait()
	}
}

// hasReader reports whether someone holds FIFO path open for reading:
// an open for writing that does not block fails with ENXIO otherwise. An
// error means it cannot tell (no FIFO there: another transport).
func hasReader(path string) (bool, error) {
	fd, err := fifo.Open(path, sys.FIFOWriteNonblock)
	if errors.Is(err, sys.ENXIO) {
		return false, nil
	}
	if err != nil {
		return false, err
	}
	sys.Close(fd)
	return true, nil
}

// quietFor is the agent side of the check: how long neither a page nor a
// control frame came. since is when the watch began.
func (a *agent) quietFor(since time.Time, lastBytes *int64, lastMove *time.Time) time.Duration {
	now := time.Now()
	if b := a.bytesMoved(); b != *lastBytes {
		*lastBytes, *lastMove = b, now
	}
	latest := since
	for _, t := range []time.Time{*lastMove, a.sess.LastHeard()} {
		if t.After(latest) {
			latest = t
		}
	}
	return now.Sub(latest)
}

// answers sends one status request and reports whether the agent answered
// within the alive timeout (an error reply is an answer). A page or a
// frame that came meanwhile is an answer too: the guest lives, however
// slow its agent's reply.
func (a *agent) answers(ctx context.Context) (bool, error) {
	sctx, cancel := context.WithTimeout(ctx, a.cfg.AliveTimeout)
	defer cancel()
	asked, bytes := time.Now(), a.bytesMoved()
	_, err := a.sess.Status(sctx)
	if err == nil || errors.Is(err, session.ErrAgent) {
		return true, nil
	}
	if ctx.Err() != nil {
		return true, nil // the capture ends anyway
	}
	if a.bytesMoved() != bytes || a.sess.LastHeard().After(asked) {
		return true, nil
	}
	return false, fmt.Errorf("the agent stopped answering: no page and no control frame for %v, and no answer to a status request within %v (a guest kernel that panicked or hangs): %w",
		a.cfg.QuietCheck, a.cfg.AliveTimeout, err)
}

// isGone reports whether the guest went away.
func (l *liveness) isGone() bool {
	select {
	case <-l.gone:
		return true
	default:
		return false
	}
}
