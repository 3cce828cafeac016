package cli

import (
	"math"
	"testing"
)

func TestParseSize(t *testing.T) {
	for in, want := range map[string]uint64{
		"1": 1, "4096": 4096, "65536": 65536, "64K": 64 << 10, "64k": 64 << 10, "1M": 1 << 20, "1m": 1 << 20,
		"2MiB": 2 << 20, "4KB": 4 << 10, "4kb": 4 << 10, "1G": 1 << 30, "64g": 64 << 30, "3GiB": 3 << 30, " 8M ": 8 << 20,
		"1023B": 1023, "17179869183G": 17179869183 << 30,
	} {
		if got, err := ParseSize(in); err != nil || got != want {
			t.Errorf("ParseSize(%q) = %d, %v; want %d", in, got, err, want)
		}
	}
	for _, bad := range []string{"", "K", "B", "iB", "1iB", "0", "0K", "-1", "+1", "1.5M", "1T", "1KK", "0x10", "1 M", "1_000",
		"17179869184G", "18446744073709551616"} {
		if got, err := ParseSize(bad); err == nil {
			t.Errorf("ParseSize(%q) = %d, want an error", bad, got)
		}
	}
}

func FuzzParseSize(f *testing.F) {
	for _, s := range []string{"4096", "64K", "2MiB", "1G", "0", "1iB", "17179869184G"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		n, err := ParseSize(s)
		if err != nil {
			return
		}
		if n == 0 {
			t.Fatalf("ParseSize(%q) = 0 without an error", s)
		}
		if again, err := ParseSize(FormatSize(n)); err != nil || again != n {
			t.Fatalf("round trip of %d via %q: %d, %v", n, FormatSize(n), again, err)
		}
	})
}

func TestFormatSize(t *testing.T) {
	for n, want := range map[uint64]string{0: "0", 1: "1", 1000: "1000", 1 << 10: "1K", 1536: "1536", 1 << 20: "1M", 3 << 30: "3G", 1<<40 + 1<<20: "1048577M"} {
		if got := FormatSize(n); got != want {
			t.Errorf("FormatSize(%d) = %q, want %q", n, got, want)
		}
	}
}

func TestPipeSize(t *testing.T) {
	for _, tc := range []struct {
		n         uint64
		max, page int
		want      int // 0: an error
	}{
		{65536, 1 << 20, 4096, 65536},
		{65537, 1 << 20, 4096, 69632},
		{1 << 20, 1 << 20, 4096, 1 << 20},
		{1<<20 - 1, 1 << 20, 4096, 1 << 20},
		{65537, 1 << 20, 65536, 131072}, // 64 KiB pages (arm64, ppc64)
		{32 << 10, 1 << 20, 4096, 0},
		{2 << 20, 1 << 20, 4096, 0},
		{1<<20 + 1, 1 << 20, 4096, 0},
		{math.MaxUint64, 1 << 20, 4096, 0},
	} {
		got, err := PipeSize(tc.n, tc.max, tc.page)
		if tc.want == 0 && err == nil || tc.want != 0 && (err != nil || got != tc.want) {
			t.Errorf("PipeSize(%d, max %d, page %d) = %d, %v; want %d (0: an error)", tc.n, tc.max, tc.page, got, err, tc.want)
		}
	}
}

// TestBufferKiB: --buffer-size is in bytes, buffer_size_kb and the wire in
// KiB: rounded up, never down.
func TestBufferKiB(t *testing.T) {
	for n, want := range map[uint64]uint64{0: 0, 1: 1, 1023: 1, 1024: 1, 1025: 2, 4096: 4, 4 << 20: 4096, 64 << 30: 64 << 20,
		math.MaxUint64: 1 << 54} {
		if got := BufferKiB(n); got != want {
			t.Errorf("BufferKiB(%d) = %d, want %d", n, got, want)
		}
	}
}

// TestAgentPipeSize: the default falls back to pipe-max-size, with a note;
// a size the user gave is checked as given.
func TestAgentPipeSize(t *testing.T) {
	for _, tc := range []struct {
		n         uint64
		given     bool
		max, page int
		want      int // 0: an error
		note      bool
	}{
		{1 << 20, false, 1 << 20, 4096, 1 << 20, false},
		{1 << 20, false, 512 << 10, 4096, 512 << 10, true},
		{1 << 20, false, 4096, 4096, 4096, true}, // the sysctl's smallest value
		{1 << 20, true, 512 << 10, 4096, 0, false},
		{256 << 10, true, 512 << 10, 4096, 256 << 10, false},
		{1 << 20, false, 4 << 20, 4096, 1 << 20, false},
	} {
		got, note, err := AgentPipeSize(tc.n, tc.given, tc.max, tc.page)
		if tc.want == 0 && err == nil || tc.want != 0 && (err != nil || got != tc.want) || (note != "") != tc.note {
			t.Errorf("AgentPipeSize(%d, given %v, max %d, page %d) = %d, %q, %v; want %d (0: an error), a note: %v",
				tc.n, tc.given, tc.max, tc.page, got, note, err, tc.want, tc.note)
		}
	}
}
