// Package orders sends the line protocol's orders to a guest agent: "1\n"
// (start) and "0\n" (stop), written into the host end of the control
// channel, DIR/agent-ctl-path.in. The line protocol is the one of the
// kernel's C agent (tools/virtio/virtio-trace); every vtrace agent speaks it
// too.
//
// The line protocol has no acknowledgement. Once qemu runs it holds the FIFO
// open, so an order is accepted by the kernel's pipe even when no agent reads
// it inside the guest: Send proves that someone holds the FIFO open, not that
// an agent acted on the order.
//
// Each order is written with one write(2) of exactly two bytes, because the
// kernel's C agent accepts an order only when one read returns exactly "1\n"
// or "0\n".
//
// Lifecycle: Send opens and closes its own descriptor; nothing stays open
// when it returns. OpenIn hands its descriptor to the caller.
package orders

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"time"

	"github.com/vtrace/vtrace/host/fifo"
	"github.com/vtrace/vtrace/internal/sys"
	"github.com/vtrace/vtrace/proto/channel"
	"github.com/vtrace/vtrace/proto/control"
)

// Order is one order of the line protocol, as proto/control parses it on
// the guest side.
type Order = control.Order

// The two orders.
const (
	Stop  = control.Stop
	Start = control.Start
)

// DefaultTimeout bounds how long Send waits for a reader of the FIFO.
const DefaultTimeout = 5 * time.Second

// ErrNoReader is returned (wrapped) when nobody held the control FIFO open
// for reading within the timeout.
var ErrNoReader = errors.New("no reader")

// NoReaderHint says what to do about ErrNoReader: qemu holds a channel's
// FIFOs open from the domain's start, whether an agent runs or not.
const NoReaderHint = "is the guest running (qemu holds the FIFO open from its start)? start the domain; " +
	"one that was running when vtrace host setup added the channels gets them at its next boot: restart it"

// retryEvery is how often Send tries to open the FIFO again while nobody
// reads it: opening a FIFO for writing cannot be waited for with poll(2).
const retryEvery = 20 * time.Millisecond

// Path returns the channel the host writes orders into: the FIFO
// DIR/agent-ctl-path.in, or the unix socket DIR/agent-ctl-path
// (fifo.WritePath).
func Path(dir string) string {
	return fifo.WritePath(dir, channel.Ctl)
}

// Send writes order into DIR/agent-ctl-path.in. It waits at most timeout
// (DefaultTimeout when zero or negative) for a reader to hold the FIFO open
// and for room in it, and gives up early when ctx is done.
func Send(ctx context.Context, dir string, order Order, timeout time.Duration) error {
	if order != Start && order != Stop {
		return fmt.Errorf("send %v: unknown order", order)
	}
	if timeout <= 0 {
		timeout = DefaultTimeout
	}
	path := Path(dir)
	if err := context.Cause(ctx); err != nil {
		return fmt.Errorf("send %v order to %s: %w", order, path, err)
	}
	deadline := time.Now().Add(timeout)
	msg := []byte{byte(order), '\n'}
	for {
		err := try(path, msg, deadline)
		if err == nil {
			return nil
		}
		// ENXIO: nobody reads the FIFO yet. EPIPE: the reader left between
		// our open and our write. ErrNotListening: qemu does not listen on
		// the socket yet. All are worth another try.
		if !errors.Is(err, sys.ENXIO) && !errors.Is(err, sys.EPIPE) && !errors.Is(err, fifo.ErrNotListening) {
			return fmt.Errorf("send %v order: %w", order, err)
		}
		if !time.Now().Before(deadline) {
			return fmt.Errorf("send %v order: %w on %s after %v: %s", order, ErrNoReader, path, timeout, NoReaderHint)
		}
		t := time.NewTimer(min(retryEvery, time.Until(deadline)))
		select {
		case <-ctx.Done():
			t.Stop()
			return fmt.Errorf("send %v order to %s: %w", order, path, context.Cause(ctx))
		case <-t.C:
		}
	}
}

// try opens path without blocking, checks that it is a FIFO, waits until
// there is room for msg, and writes msg in one write(2).
func try(path string, msg []byte, deadline time.Time) error {
	fd, err := fifo.Open(path, sys.FIFOWriteNonblock)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return fmt.Errorf("%w: run `vtrace host setup <domain>` first (or mkfifo the channel's FIFOs)", err)
		}
		return err
	}
	defer sys.Close(fd)
	for {
		n, err := sys.Write(fd, msg)
		if err == nil && n == len(msg) {
			return nil
		}
		if err == nil {
			// A pipe writes up to PIPE_BUF bytes atomically: this cannot happen.
			return fmt.Errorf("write %s: short write of %d bytes", path, n)
		}
		if !errors.Is(err, sys.EAGAIN) {
			return fmt.Errorf("write %s: %w", path, err)
		}
		// The FIFO is full: orders nobody reads have piled up.
		ev := sys.Timeout
		if left := time.Until(deadline); left > 0 {
			if ev, _, err = sys.Poll(fd, sys.Out, nil, left); err != nil {
				return err
			}
		}
		if ev == sys.Timeout {
			return fmt.Errorf("write %s: FIFO full: its reader does not read the orders", path)
		}
	}
}

// OpenIn opens DIR/agent-ctl-path.in for writing without blocking, retrying
// while nobody holds it open for reading (ENXIO) until timeout
// (DefaultTimeout when zero or negative) or until ctx is done. The file is
// non-blocking and goes through the Go runtime's poller, so its writes
// honour write deadlines.
func OpenIn(ctx context.Context, dir string, timeout time.Duration) (*os.File, error) {
	if timeout <= 0 {
		timeout = DefaultTimeout
	}
	path := Path(dir)
	deadline := time.Now().Add(timeout)
	for {
		if err := context.Cause(ctx); err != nil {
			return nil, fmt.Errorf("open %s: %w", path, err)
		}
		fd, err := fifo.Open(path, sys.FIFOWriteNonblock)
		if err == nil {
			return os.NewFile(uintptr(fd), path), nil
		}
		if errors.Is(err, fs.ErrNotExist) {
			return nil, fmt.Errorf("%w: run `vtrace host setup <domain>` first (or mkfifo the channel's FIFOs)", err)
		}
		if !errors.Is(err, sys.ENXIO) && !errors.Is(err, fifo.ErrNotListening) {
			return nil, err
		}
		if !time.Now().Before(deadline) {
			return nil, fmt.Errorf("open %s: %w after %v: %s", path, ErrNoReader, timeout, NoReaderHint)
		}
		t := time.NewTimer(min(retryEvery, time.Until(deadline)))
		select {
		case <-ctx.Done():
			t.Stop()
		case <-t.C:
		}
	}
}
