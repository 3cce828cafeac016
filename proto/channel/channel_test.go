package channel

import (
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/vtrace/vtrace/proto/tracefs"
)

func TestNames(t *testing.T) {
	t.Parallel()
	want := []string{"agent-ctl-path", "trace-path-cpu0", "trace-path-cpu1", "trace-path-cpu2"}
	if diff := cmp.Diff(want, Names(3)); diff != "" {
		t.Errorf("Names(3) (-want +got):\n%s", diff)
	}
	if got := TraceCmdData(5000); got != "trace-pipe-cpu5000" {
		t.Errorf("TraceCmdData(5000) = %q", got)
	}
}

func TestParseData(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name string
		n    int
		ok   bool
	}{
		{"trace-path-cpu0", 0, true}, {"trace-path-cpu17", 17, true}, {"trace-path-cpu5000", 5000, true},
		{Data(tracefs.MaxCPU), tracefs.MaxCPU, true}, {Data(tracefs.MaxCPU + 1), 0, false},
		{"trace-path-cpu", 0, false}, {"trace-path-cpu01", 0, false}, {"trace-path-cpu-1", 0, false},
		{"trace-path-cpu1x", 0, false}, {"agent-ctl-path", 0, false}, {"trace-path-cpu1234567", 0, false},
		{"trace-pipe-cpu1", 0, false},
	} {
		n, ok := ParseData(tc.name)
		if n != tc.n || ok != tc.ok {
			t.Errorf("ParseData(%q) = %d, %v; want %d, %v", tc.name, n, ok, tc.n, tc.ok)
		}
	}
}
