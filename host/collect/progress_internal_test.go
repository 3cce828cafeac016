package collect

import (
	"strings"
	"sync"
	"testing"
	"time"
)

type lockedBuilder struct {
	mu sync.Mutex
	b  strings.Builder
}

func (l *lockedBuilder) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

// TestProgressGuests: with several guests, one line per guest, named,
// rewritten in place (cursor up), and a last set of lines ending in a
// newline; a guest gone says so.
func TestProgressGuests(t *testing.T) {
	mk := func(name string, bytes int64) *guestRun {
		s := &stream{cpu: 0}
		s.written.Store(bytes)
		return &guestRun{name: name, streams: []*stream{s}, c: &capture{life: newLiveness(Config{})}, begin: time.Now()}
	}
	a, b := mk("a", 4096), mk("b", 8192)
	b.c.life.report("qemu exited")
	var w lockedBuilder
	stop := startProgress(&w, time.Millisecond, []*guestRun{a, b}, true)
	time.Sleep(20 * time.Millisecond)
	stop()
	out := w.b.String()
	if !strings.Contains(out, "\ra: 4.0 KiB") || !strings.Contains(out, "\rb: 8.0 KiB") || !strings.Contains(out, "\x1b[1A") {
		t.Errorf("progress %q: want a line per guest, rewritten in place", out)
	}
	last := out[strings.LastIndex(out, "\x1b[1A")+len("\x1b[1A"):]
	if !strings.HasSuffix(last, "\n") || strings.Count(last, "\n") != 2 || !strings.Contains(last, " GONE") {
		t.Errorf("last lines %q: want both guests' lines, b GONE, and a newline", last)
	}
}
