package wire

import (
	"strings"
	"testing"
)

// TestValidName: the one name rule, and checkName agreeing with it.
func TestValidName(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		s    string
		want bool
	}{
		{"sched_switch", true}, {"x86-tsc", true}, {"a.b", true}, {"...", true}, {"A9", true},
		{strings.Repeat("a", MaxName), true},
		{"", false}, {".", false}, {"..", false}, {"a/b", false}, {"a b", false}, {"é", false},
		{"a\x00", false}, {strings.Repeat("a", MaxName+1), false},
	} {
		if got := ValidName(tc.s); got != tc.want {
			t.Errorf("ValidName(%q) = %v, want %v", tc.s, got, tc.want)
		}
		if err := checkName("name", tc.s); (err == nil) != tc.want {
			t.Errorf("checkName(%q) = %v, want ok %v", tc.s, err, tc.want)
		}
	}
}

func TestSettingsIsZero(t *testing.T) {
	t.Parallel()
	if !(Settings{}).IsZero() {
		t.Error("zero Settings: IsZero false")
	}
	for _, s := range []Settings{
		{Events: []string{"sched"}}, {Filters: []Filter{{"sched", "pid > 1"}}}, {BufferKiB: 1},
		{Clock: "mono"}, {Instance: "x"},
	} {
		if s.IsZero() {
			t.Errorf("%+v: IsZero true", s)
		}
	}
	// A latency says how pages move, not what is traced.
	if !(Settings{LatencyMS: 250}).IsZero() {
		t.Error("Settings with only a latency: IsZero false")
	}
}
