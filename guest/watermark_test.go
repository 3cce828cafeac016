package guest

import (
	"os"
	"path/filepath"
	"testing"
)

// TestWatermark: the watermark is the configured buffer_percent, lowered
// to the share of the buffer one pipe holds (at least 1); a negative one,
// and one for a directory whose buffer size cannot be read, stay as given.
func TestWatermark(t *testing.T) {
	dir := t.TempDir()
	for _, c := range []struct {
		size          string // buffer_size_kb; "": none
		percent, pipe int
		want          int
	}{
		{"1410\n", 10, 1 << 20, 10},
		{"16384\n", 10, 1 << 20, 6},
		{"16384\n", 4, 1 << 20, 4},
		{"7 (expanded: 16384)\n", 10, 1 << 20, 10}, // 7 KiB: the pipe holds it all
		{"262144\n", 10, 1 << 20, 1},
		{"16384\n", -1, 1 << 20, -1},
		{"", 10, 1 << 20, 10},
		{"none\n", 10, 1 << 20, 10},
	} {
		file := filepath.Join(dir, "buffer_size_kb")
		os.Remove(file)
		if c.size != "" {
			if err := os.WriteFile(file, []byte(c.size), 0o600); err != nil {
				t.Fatal(err)
			}
		}
		if got := watermark(dir, c.percent, c.pipe); got != c.want {
			t.Errorf("buffer_size_kb %q, percent %d, pipe %d: %d, want %d", c.size, c.percent, c.pipe, got, c.want)
		}
	}
}
