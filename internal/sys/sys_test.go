package sys

import (
	"errors"
	"os"
	"path/filepath"
	"runtime"
	"testing"
	"time"
)

func TestPipeSpliceAndBuffered(t *testing.T) {
	r1, w1, got, err := Pipe(256 << 10)
	if err != nil {
		t.Fatal(err)
	}
	defer Close(r1)
	defer Close(w1)
	if got < 256<<10 {
		t.Fatalf("pipe size %d, asked for %d", got, 256<<10)
	}
	r2, w2, _, err := Pipe(0)
	if err != nil {
		t.Fatal(err)
	}
	defer Close(r2)
	defer Close(w2)

	page := make([]byte, 4096)
	for i := range page {
		page[i] = byte(i)
	}
	if n, err := Write(w1, page); err != nil || n != len(page) {
		t.Fatalf("write = %d, %v", n, err)
	}
	if n, err := PipeBuffered(r1); err != nil || n != len(page) {
		t.Fatalf("buffered = %d, %v; want %d", n, err, len(page))
	}
	if n, err := Splice(r1, w2, 1<<20, SpliceMove|SpliceNonblock); err != nil || n != len(page) {
		t.Fatalf("splice = %d, %v", n, err)
	}
	// An empty non-blocking pipe: EAGAIN, comparable with errors.Is.
	if _, err := Splice(r1, w2, 4096, SpliceNonblock); !errors.Is(err, EAGAIN) {
		t.Fatalf("splice from empty pipe: %v, want EAGAIN", err)
	}
	back := make([]byte, 8192)
	if n, err := Read(r2, back); err != nil || n != len(page) || back[4095] != page[4095] {
		t.Fatalf("read back %d bytes, %v", n, err)
	}
}

func TestPollReadyWokenTimeout(t *testing.T) {
	r, w, _, err := Pipe(0)
	if err != nil {
		t.Fatal(err)
	}
	defer Close(r)
	defer Close(w)
	wk, err := NewWaker()
	if err != nil {
		t.Fatal(err)
	}
	defer wk.Close()

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

func TestAffinity(t *testing.T) {
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	before, err := Affinity()
	if err != nil || len(before) == 0 {
		t.Fatalf("affinity %v, %v", before, err)
	}
	cpu := before[len(before)-1]
	if err := SetAffinity(cpu); err != nil {
		t.Fatal(err)
	}
	after, err := Affinity()
	if err != nil || len(after) != 1 || after[0] != cpu {
		t.Fatalf("after SetAffinity(%d): %v, %v", cpu, after, err)
	}
	// Give the thread back its CPUs before it returns to the pool.
	if err := restore(before); err != nil {
		t.Fatal(err)
	}
}

func TestMkfifoAndOpen(t *testing.T) {
	p := filepath.Join(t.TempDir(), "f")
	if err := Mkfifo(p, 0o600); err != nil {
		t.Fatal(err)
	}
	st, err := os.Lstat(p)
	if err != nil || st.Mode()&os.ModeNamedPipe == 0 {
		t.Fatalf("mkfifo made %v, %v", st, err)
	}
	if err := Mkfifo(p, 0o600); !errors.Is(err, os.ErrExist) {
		t.Fatalf("second mkfifo: %v, want ErrExist", err)
	}
	if _, err := Open(filepath.Join(t.TempDir(), "missing"), os.O_RDONLY, 0); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("open missing: %v", err)
	}
}
