package sys

import (
	"testing"
	"time"
)

func TestPollReadyWokenTimeout(t *testing.T) {
	r, w, wk := pipeAndWaker(t)

	if ev, _, err := Poll(r, In, wk, 10*time.Millisecond); err != nil || ev != Timeout {
		t.Fatalf("empty pipe: %v, %v; want Timeout", ev, err)
	}
	if ev, _, err := Poll(w, Out, wk, -1); err != nil || ev != Ready {
		t.Fatalf("writable pipe: %v, %v; want Ready", ev, err)
	}
	done := make(chan Event)
	go func() {
		ev, _, _ := Poll(r, In, wk, -1)
		done <- ev
	}()
	wk.Wake()
	if ev := <-done; ev != Woken {
		t.Fatalf("after Wake: %v, want Woken", ev)
	}
	// Woken wins over a ready fd, until Clear.
	Write(w, []byte("x"))
	if ev, _, _ := Poll(r, In, wk, -1); ev != Woken {
		t.Fatalf("woken and ready: %v, want Woken", ev)
	}
	wk.Clear()
	if ev, _, _ := Poll(r, In, wk, -1); ev != Ready {
		t.Fatalf("after Clear: %v, want Ready", ev)
	}
}

// TestPollInOut: a negative fd is not waited for; either fd ready is Ready.
func TestPollInOut(t *testing.T) {
	r, w, wk := pipeAndWaker(t)

	if ev, err := PollInOut(-1, -1, wk, 10*time.Millisecond); err != nil || ev != Timeout {
		t.Fatalf("no fds: %v, %v; want Timeout", ev, err)
	}
	if ev, err := PollInOut(r, -1, wk, 10*time.Millisecond); err != nil || ev != Timeout {
		t.Fatalf("empty pipe: %v, %v; want Timeout", ev, err)
	}
	if ev, err := PollInOut(r, w, wk, -1); err != nil || ev != Ready {
		t.Fatalf("empty pipe, writable end: %v, %v; want Ready", ev, err)
	}
	if _, err := Write(w, []byte("x")); err != nil {
		t.Fatal(err)
	}
	if ev, err := PollInOut(r, -1, wk, -1); err != nil || ev != Ready {
		t.Fatalf("readable pipe: %v, %v; want Ready", ev, err)
	}
	wk.Wake()
	if ev, err := PollInOut(r, w, wk, -1); err != nil || ev != Woken {
		t.Fatalf("woken and ready: %v, %v; want Woken", ev, err)
	}
}

// pipeAndWaker makes a pipe and a Waker, closed when the test ends.
func pipeAndWaker(t *testing.T) (r, w int, wk *Waker) {
	t.Helper()
	r, w, _, err := Pipe(0)
	if err != nil {
		t.Fatal(err)
	}
	if wk, err = NewWaker(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		Close(r)
		Close(w)
		wk.Close()
	})
	return r, w, wk
}
