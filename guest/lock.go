package guest

// The agent's own advisory lock on the ring buffers it streams: tracefs has
// no exclusive open for trace_pipe_raw, and two readers of one buffer
// split its events between them, each losing what the other took.

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"

	"github.com/vtrace/vtrace/internal/sys"
)

// errLocked: another open file description holds the lock.
var errLocked = errors.New("another vtrace agent streams this ring buffer")

// dirLock is an exclusive flock(2) on a tracefs directory (the top level
// or an instance), taken by the agent that streams its ring buffer and held
// until Close. Every vtrace agent takes it, so a second one on the same
// buffer (through any path to it) is refused. It owns its fd.
type dirLock struct {
	fd  int
	dir string
}

// lockDir takes dir's lock without waiting. When another holds it, the
// error wraps errLocked and names the holder's pid and program when
// /proc/locks shows them.
func lockDir(dir string) (*dirLock, error) {
	fd, err := sys.Open(dir, sys.ORdonly|sys.ODirectory, 0)
	if err != nil {
		return nil, fmt.Errorf("lock %s: %w", dir, err)
	}
	ok, err := sys.TryLock(fd)
	if err != nil {
		sys.Close(fd)
		return nil, fmt.Errorf("lock %s: %w", dir, err)
	}
	if !ok {
		holder := "its pid is not visible here"
		if id, err := sys.FileIDOf(fd); err == nil {
			if locks, err := os.ReadFile("/proc/locks"); err == nil {
				if pid := lockHolder(locks, id); pid > 0 {
					holder = "pid " + strconv.Itoa(pid)
					if comm, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/comm"); err == nil {
						holder += ", " + strings.TrimSpace(string(comm))
					}
				}
			}
		}
		sys.Close(fd)
		return nil, fmt.Errorf("lock %s: %w (%s)", dir, errLocked, holder)
	}
	return &dirLock{fd: fd, dir: dir}, nil
}

// Close lets the lock go. A nil lock does nothing.
func (l *dirLock) Close() error {
	if l == nil || l.fd < 0 {
		return nil
	}
	err := sys.Close(l.fd)
	l.fd = -1
	if err != nil {
		return fmt.Errorf("unlock %s: %w", l.dir, err)
	}
	return nil
}

// lockHolder returns the pid holding a flock(2) on the file id in the text
// of /proc/locks, or 0. The kernel writes one lock a line
// ("1: FLOCK  ADVISORY  WRITE 1234 00:0e:5678 0 EOF", fs/locks.c), the
// device's numbers in hex; lines of waiters ("1: -> FLOCK ...") are not
// holders. The pid is as seen from the reader's pid namespace (0 or -1 when
// the holder is not visible there).
func lockHolder(locks []byte, id sys.FileID) int {
	want := fmt.Sprintf("%02x:%02x:%d", id.Major, id.Minor, id.Ino)
	for _, line := range bytes.Split(locks, []byte("\n")) {
		f := strings.Fields(string(line))
		if len(f) < 6 || f[1] != "FLOCK" || f[5] != want {
			continue
		}
		if pid, err := strconv.Atoi(f[4]); err == nil && pid > 0 {
			return pid
		}
	}
	return 0
}
