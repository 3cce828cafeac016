package guest

import (
	"testing"

	"github.com/vtrace/vtrace/internal/sys"
)

func TestLockHolder(t *testing.T) {
	t.Parallel()
	locks := []byte(`1: POSIX  ADVISORY  WRITE 811 00:19:1234 0 EOF
2: FLOCK  ADVISORY  WRITE 5242 fe:00:9977987 0 EOF
3: FLOCK  ADVISORY  WRITE 4711 00:0e:1 0 EOF
3: -> FLOCK  ADVISORY  WRITE 4712 00:0e:1 0 EOF
4: FLOCK  ADVISORY  WRITE 0 00:0e:7 0 EOF
5: FLOCK  ADVISORY  WRITE 99 103:0a:5 0 EOF
`)
	for _, tc := range []struct {
		id   sys.FileID
		want int
	}{
		{sys.FileID{Major: 0, Minor: 0x0e, Ino: 1}, 4711}, // the holder, not the waiter
		{sys.FileID{Major: 0xfe, Minor: 0, Ino: 9977987}, 5242},
		{sys.FileID{Major: 0, Minor: 0x19, Ino: 1234}, 0}, // a POSIX lock is not the agent's
		{sys.FileID{Major: 0, Minor: 0x0e, Ino: 7}, 0},    // a holder in another pid namespace
		{sys.FileID{Major: 0x103, Minor: 0x0a, Ino: 5}, 99},
		{sys.FileID{Major: 0, Minor: 0x0e, Ino: 2}, 0},
	} {
		if got := lockHolder(locks, tc.id); got != tc.want {
			t.Errorf("lockHolder(%+v) = %d, want %d", tc.id, got, tc.want)
		}
	}
}
