package cpustream

import (
	"bytes"
	"errors"
	"io"
	"os"
	"testing"
)

func TestRoundTrip(t *testing.T) {
	t.Parallel()
	pages := [][]byte{bytes.Repeat([]byte{1}, 4096), bytes.Repeat([]byte{2}, 4096), {}}
	var stream []byte
	for i, p := range pages {
		stream = AppendHeader(stream, Header{CPU: uint32(i * 3), Length: uint32(len(p))})
		stream = append(stream, p...)
	}
	r := NewReader(bytes.NewReader(stream))
	for i, want := range pages {
		h, got, err := r.Next()
		if err != nil {
			t.Fatalf("record %d: %v", i, err)
		}
		if h.CPU != uint32(i*3) || !bytes.Equal(got, want) {
			t.Errorf("record %d: cpu %d, %d bytes; want cpu %d, %d bytes", i, h.CPU, len(got), i*3, len(want))
		}
	}
	if _, _, err := r.Next(); err != io.EOF {
		t.Errorf("after the last record: %v, want io.EOF", err)
	}
}

func TestErrors(t *testing.T) {
	t.Parallel()
	good := append(AppendHeader(nil, Header{CPU: 1, Length: 8}), "abcdefgh"...)
	for _, tc := range []struct {
		name string
		in   []byte
		want error
	}{
		{"short header", good[:10], ErrTruncated},
		{"short page", good[:20], ErrTruncated},
		{"bad magic", append([]byte("XTRC"), good[4:]...), ErrCorrupt},
		{"huge length", AppendHeader(nil, Header{Length: MaxLength + 1}), ErrCorrupt},
		{"flags", AppendHeader(nil, Header{Flags: 1}), ErrCorrupt},
	} {
		_, _, err := NewReader(bytes.NewReader(tc.in)).Next()
		if !errors.Is(err, tc.want) {
			t.Errorf("%s: %v, want %v", tc.name, err, tc.want)
		}
	}
}

func FuzzReader(f *testing.F) {
	f.Add(append(AppendHeader(nil, Header{CPU: 1, Length: 4}), "page"...))
	f.Add(AppendHeader(nil, Header{CPU: 7, Length: 4096}))
	// A real record stream, as `vtrace guest agent -o` wrote it.
	if b, err := os.ReadFile("testdata/agent-o.bin"); err == nil {
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, in []byte) {
		r := NewReader(bytes.NewReader(in))
		var again []byte
		for {
			h, page, err := r.Next()
			if err == io.EOF {
				break
			}
			if err != nil {
				if !errors.Is(err, ErrCorrupt) && !errors.Is(err, ErrTruncated) {
					t.Fatalf("unexpected error kind: %v", err)
				}
				return
			}
			if int(h.Length) != len(page) {
				t.Fatalf("length %d, page %d bytes", h.Length, len(page))
			}
			again = append(AppendHeader(again, h), page...)
		}
		// A stream that decodes cleanly re-encodes to itself.
		if !bytes.Equal(again, in) {
			t.Fatalf("re-encoded %d bytes differ from the %d read", len(again), len(in))
		}
	})
}
