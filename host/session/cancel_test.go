package session_test

import (
	"context"
	"sync/atomic"
	"testing"
	"time"

	"github.com/vtrace/vtrace/host/fifo"
	"github.com/vtrace/vtrace/host/session"
	"github.com/vtrace/vtrace/internal/sys"
	"github.com/vtrace/vtrace/proto/channel"
	"github.com/vtrace/vtrace/proto/wire"
)

// registerCtx is a context whose AfterFunc hands the function to the test
// instead of calling it: the test then knows that a read is waiting and
// chooses when its cancellation starts.
type registerCtx struct {
	context.Context
	registered chan func()
}

// Value hides the embedded cancelCtx, so that context.AfterFunc goes
// through the AfterFunc method below.
func (c *registerCtx) Value(any) any { return nil }

func (c *registerCtx) AfterFunc(f func()) func() bool {
	c.registered <- f
	return func() bool { return true }
}

// TestSessionWatchCancelWaitsForCallback: a Watch cancelled while a frame
// arrives returns only once its read's cancellation is over. Before, the
// cancellation could run late and put a past read deadline on the next
// read, a Stop's, which then timed out at once and lost the final stats.
func TestSessionWatchCancelWaitsForCallback(t *testing.T) {
	dir := fifoDir(t)
	status := make(chan struct{})
	script(t, dir, func(p *peer) {
		p.hello()
		<-status
		p.send(&wire.Status{ID: 1, State: wire.StateRecording})
		m, ok := expectA[*wire.Stop](p)
		if !ok {
			return
		}
		p.send(&wire.StopReply{ID: m.ID, CPUs: []wire.CPUStats{{CPU: 0, ReadEvents: 7}}})
	})
	s := open(t, dir, session.Options{HandshakeTimeout: guard, ReplyTimeout: guard})

	inner, cancel := context.WithCancel(context.Background())
	defer cancel()
	ctx := &registerCtx{Context: inner, registered: make(chan func(), 16)}
	watched := make(chan error, 1)
	go func() { watched <- s.Watch(ctx) }()
	startCancel := <-ctx.registered // Watch is in its read

	unlock := session.LockForTest(s)
	var released atomic.Bool
	cancel()
	startCancel() // the read's cancellation starts, and waits for the lock
	close(status) // the read returns with the Status
	// Let the cancellation go on a little later: Watch must wait for it.
	time.AfterFunc(50*time.Millisecond, func() {
		released.Store(true)
		unlock()
	})
	select {
	case err := <-watched:
		if err != nil {
			t.Fatalf("Watch: %v", err)
		}
	case <-time.After(guard):
		t.Fatal("Watch did not return")
	}
	if !released.Load() {
		t.Error("Watch returned while its read's cancellation was still to run")
	}
	r, err := s.Stop(context.Background(), guard)
	if err != nil {
		t.Fatalf("Stop after Watch: %v", err)
	}
	if len(r.CPUs) != 1 || r.CPUs[0].ReadEvents != 7 {
		t.Errorf("StopReply: %+v", r)
	}
}

// TestSessionCommandAfterClose: a command on a Session that another
// goroutine closed fails with an error. The test waits for the Close
// through the kernel (the flock on .out is gone), which the race detector
// does not count as synchronization: under go test -race it saw the
// command read the channel's file without the lock that Close holds when
// it clears it (a nil dereference when the two interleave).
func TestSessionCommandAfterClose(t *testing.T) {
	dir := fifoDir(t)
	script(t, dir, func(p *peer) { p.hello() })
	s := open(t, dir, session.Options{HandshakeTimeout: guard, ReplyTimeout: guard})
	go s.Close()
	_, out := fifo.Paths(dir, channel.Ctl)
	for deadline := time.Now().Add(guard); ; time.Sleep(time.Millisecond) {
		fd, err := sys.Open(out, sys.FIFOReadNonblock, 0)
		if err != nil {
			t.Fatal(err)
		}
		ok, err := sys.TryLock(fd)
		sys.Close(fd)
		if err != nil {
			t.Fatal(err)
		}
		if ok {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("Close did not release the channel")
		}
	}
	if _, err := s.Status(context.Background()); err == nil {
		t.Error("Status on a closed Session: no error")
	}
}
