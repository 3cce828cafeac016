package sys

import (
	"errors"
	"testing"
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
	if n, err := Splice(r1, w2, 1<<20, SpliceNonblock); err != nil || n != len(page) {
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
