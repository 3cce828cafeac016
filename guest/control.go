package guest

// The control loop: what the control port says, read in its own goroutine
// and carried out one input at a time (protocol.go answers the frames).

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"time"

	"github.com/vtrace/vtrace/internal/sys"
	"github.com/vtrace/vtrace/proto/control"
	"github.com/vtrace/vtrace/proto/wire"
)

// input is one thing read from the control port.
type input struct {
	order control.Item // text: an order or garbage, when frame and err are nil
	frame *wire.Frame
	probe *probeReceipt // frame is a ClockProbe, its clock read on receipt
	err   error         // a frame that could not be read
}

// Run obeys the control port until ctx ends or a CPU fails, then stops
// every CPU (giving up after drainTimeout, if not 0, or when abort is
// closed) and closes the agent.
func (a *Agent) Run(ctx context.Context, drainTimeout time.Duration, abort <-chan struct{}) error {
	inputs := make(chan input)
	readerDone := make(chan struct{})
	s := &session{a: a, stop: ctx.Done(), abort: abort}
	if a.ctl != nil {
		s.out = newCtlOut(a.reply, a.replyPath(), a.cfg.ReplyQueue, a.log)
		defer s.out.close()
		go a.readControl(inputs, readerDone)
	} else {
		a.log.Info("no control port: streaming at once")
		if err := a.Start(ctx); err != nil && ctx.Err() == nil { // a signal during the start is the end below
			return a.shutdown(err, drainTimeout, abort)
		}
	}
	for {
		var err error
		select {
		case <-ctx.Done():
			close(readerDone)
			return a.shutdown(nil, drainTimeout, abort)
		case err = <-a.failed:
			close(readerDone)
			a.abortAll()
			return a.shutdown(err, drainTimeout, abort)
		case in := <-inputs:
			err = s.handle(ctx, in)
		case <-s.tick:
			s.stats()
		}
		if err != nil && ctx.Err() == nil {
			close(readerDone)
			a.abortAll()
			return a.shutdown(err, drainTimeout, abort)
		}
	}
}

// asyncWait bounds a wait for SIGIO on a control port whose host end is
// closed: the signal, not this pause, wakes the agent when the host comes.
const asyncWait = 30 * time.Second

// readControl splits what the control port says into frames and text,
// feeds the text to the order parser, and hands both on until done is
// closed or the port is.
func (a *Agent) readControl(inputs chan<- input, done <-chan struct{}) {
	// The host may speak the line protocol: an order after a false frame
	// start is obeyed at once (wire.Demux.TextOrders).
	d := wire.Demux{TextOrders: true}
	var p control.Parser
	buf := make([]byte, 64<<10)
	const minWait = 10 * time.Millisecond
	maxWait := time.Second
	wait := minWait
	// A virtio port whose host end is closed (a unix-socket channel that no
	// host program is connected to) reads EOF and polls as hung up at once.
	// The kernel sends SIGIO when the host end opens (and when data comes):
	// wait for that, with a long pause as a safety net, rather than poll.
	var sigio chan os.Signal
	if rc, err := a.ctl.SyscallConn(); err == nil {
		var serr error
		rc.Control(func(fd uintptr) { serr = sys.SetAsync(int(fd)) })
		if serr == nil {
			sigio = make(chan os.Signal, 1)
			signal.Notify(sigio, sys.SIGIO)
			defer signal.Stop(sigio)
			maxWait = asyncWait
		}
	}
	hand := func(in input) bool {
		select {
		case inputs <- in:
			return true
		case <-done:
			return false
		}
	}
	for {
		n, err := a.ctl.Read(buf)
		for _, it := range d.Feed(buf[:n]) {
			if it.Frame != nil || it.Err != nil {
				// A frame (or what failed to be one) ends the text line
				// before it.
				for _, o := range p.End() {
					if !hand(input{order: o}) {
						return
					}
				}
			}
			switch {
			case it.Frame != nil:
				if !hand(input{frame: it.Frame, probe: receiveProbe(it.Frame)}) {
					return
				}
			case it.Err != nil:
				if !hand(input{err: it.Err}) {
					return
				}
			default:
				for _, o := range p.Feed(it.Text) {
					if !hand(input{order: o}) {
						return
					}
				}
			}
		}
		switch {
		case err == nil:
			wait = minWait
		case errors.Is(err, io.EOF):
			// A virtio port whose host end is closed reads EOF and polls
			// as hung up at once: look again later, ever more slowly. A
			// frame cut short by the host that went away is dropped, a
			// line ended.
			if ferr := d.Flush(); ferr != nil && !hand(input{err: ferr}) {
				return
			}
			for _, o := range p.End() {
				if !hand(input{order: o}) {
					return
				}
			}
			if wait == minWait {
				a.log.Debug("control port: host end closed, waiting for it")
			}
			select {
			case <-time.After(wait):
			case <-sigio:
			case <-done:
				return
			}
			wait = min(2*wait, maxWait)
		case errors.Is(err, os.ErrClosed):
			return
		default:
			select {
			case a.failed <- fmt.Errorf("read control port %s: %w", a.ctlPath, err):
			default:
			}
			return
		}
	}
}
