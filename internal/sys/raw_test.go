package sys

import "testing"

// TestRawCalls: SpliceRaw moves what a pipe holds and says EAGAIN itself
// (no wrapper, no allocation) for an empty one; PollInOutRaw reports a
// ready fd, a fired Waker and a timeout.
func TestRawCalls(t *testing.T) {
	r1, w1, _, err := Pipe(0)
	if err != nil {
		t.Fatal(err)
	}
	defer Close(r1)
	defer Close(w1)
	r2, w2, _, err := Pipe(0)
	if err != nil {
		t.Fatal(err)
	}
	defer Close(r2)
	defer Close(w2)
	wk, err := NewWaker()
	if err != nil {
		t.Fatal(err)
	}
	defer wk.Close()

	if ev, err := PollInOutRaw(r1, -1, wk, 0); err != nil || ev != Timeout {
		t.Errorf("poll of an empty pipe: %v, %v; want Timeout", ev, err)
	}
	if _, err := SpliceRaw(r1, w2, 4096, SpliceNonblock); err != EAGAIN {
		t.Errorf("splice from an empty pipe: %#v, want EAGAIN itself", err)
	}
	if n := testing.AllocsPerRun(10, func() { SpliceRaw(r1, w2, 4096, SpliceNonblock) }); n != 0 {
		t.Errorf("splice from an empty pipe allocates %v times, want 0", n)
	}
	if _, err := Write(w1, make([]byte, 4096)); err != nil {
		t.Fatal(err)
	}
	if ev, err := PollInOutRaw(r1, -1, wk, 0); err != nil || ev != Ready {
		t.Errorf("poll of a pipe holding a page: %v, %v; want Ready", ev, err)
	}
	if n, err := SpliceRaw(r1, w2, 1<<20, SpliceNonblock); err != nil || n != 4096 {
		t.Errorf("splice of a page: %d, %v; want 4096", n, err)
	}
	wk.Wake()
	if ev, err := PollInOutRaw(-1, -1, wk, 0); err != nil || ev != Woken {
		t.Errorf("poll of a fired waker: %v, %v; want Woken", ev, err)
	}
}
