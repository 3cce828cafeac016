package vmtest

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"regexp"
	"sync"
	"time"
)

// text is output that grows (the console, the test port's replies) and
// that waiters search as it arrives.
type text struct {
	mu      sync.Mutex
	buf     []byte
	changed chan struct{} // closed and replaced on every write
}

func newText() *text { return &text{changed: make(chan struct{})} }

// write appends p without its carriage returns (the console's tty adds them).
func (t *text) write(p []byte) {
	if len(p) == 0 {
		return
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	t.buf = append(t.buf, bytes.ReplaceAll(p, []byte("\r"), nil)...)
	close(t.changed)
	t.changed = make(chan struct{})
}

func (t *text) String() string {
	t.mu.Lock()
	defer t.mu.Unlock()
	return string(t.buf)
}

func (t *text) len() int {
	t.mu.Lock()
	defer t.mu.Unlock()
	return len(t.buf)
}

// errExited says the guest ended before the awaited line came.
var errExited = errors.New("qemu exited")

// wait waits up to timeout for a complete line at or after offset from
// matching pattern (multi-line mode), and returns the submatches, the offset
// of the matching line's start and the offset after its newline. It gives up
// early once exited is closed and nothing more can come.
func (t *text) wait(pattern string, from int, timeout time.Duration, exited <-chan struct{}) (m []string, start, end int, err error) {
	re, err := regexp.Compile("(?m)" + pattern)
	if err != nil {
		return nil, 0, 0, fmt.Errorf("compile %q: %w", pattern, err)
	}
	deadline := time.NewTimer(timeout)
	defer deadline.Stop()
	over := false
	for {
		t.mu.Lock()
		whole := t.buf[:bytes.LastIndexByte(t.buf, '\n')+1] // complete lines only
		changed := t.changed
		if from < len(whole) {
			if loc := re.FindSubmatchIndex(whole[from:]); loc != nil {
				m = make([]string, len(loc)/2)
				for i := range m {
					if loc[2*i] >= 0 {
						m[i] = string(whole[from+loc[2*i] : from+loc[2*i+1]])
					}
				}
				start = bytes.LastIndexByte(whole[:from+loc[0]], '\n') + 1
				if start < from {
					start = from
				}
				end = from + loc[1]
				if i := bytes.IndexByte(whole[end:], '\n'); i >= 0 {
					end += i + 1
				}
				t.mu.Unlock()
				return m, start, end, nil
			}
		}
		t.mu.Unlock()
		if over {
			return nil, 0, 0, fmt.Errorf("no line matching %q: %w", pattern, errExited)
		}
		select {
		case <-changed:
		case <-exited:
			// Look once more: the last output may have come with the exit.
			over = true
			exited = nil
		case <-deadline.C:
			return nil, 0, 0, fmt.Errorf("no line matching %q within %s", pattern, timeout)
		}
	}
}

// tee writes the console to the text waiters search and to the log file.
type tee struct {
	t *text
	w io.Writer
}

func (c *tee) Write(p []byte) (int, error) {
	c.t.write(p)
	c.w.Write(p) // the log is for people; a full disk must not stop the guest
	return len(p), nil
}
