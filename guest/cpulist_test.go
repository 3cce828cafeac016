package guest

import (
	"os"
	"reflect"
	"testing"

	"github.com/vtrace/vtrace/internal/testutil"
	"github.com/vtrace/vtrace/proto/tracefs"
)

func TestParseCPUList(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want []int
	}{
		{"0", []int{0}},
		{"0-1\n", []int{0, 1}},
		{"0-3,5", []int{0, 1, 2, 3, 5}},
		{"5,0-1,1", []int{0, 1, 5}},
		{"2-2", []int{2}},
		{" 8191 ", []int{8191}},
	} {
		got, err := ParseCPUList(tc.in)
		if err != nil || !reflect.DeepEqual(got, tc.want) {
			t.Errorf("ParseCPUList(%q) = %v, %v; want %v", tc.in, got, err, tc.want)
		}
	}
	for _, bad := range []string{"", "\n", "a", "1-", "-1", "3-1", "1,,2", "0x1", "+1", "8192", "0-99999999999999999999", "1 - 2"} {
		if got, err := ParseCPUList(bad); err == nil {
			t.Errorf("ParseCPUList(%q) = %v, want an error", bad, got)
		}
	}
}

func TestParseCPUListOnline(t *testing.T) {
	b, err := os.ReadFile("/sys/devices/system/cpu/online")
	testutil.Need(t, err == nil, "/sys/devices/system/cpu/online", "mount sysfs on /sys")
	cpus, err := ParseCPUList(string(b))
	if err != nil || len(cpus) == 0 {
		t.Fatalf("ParseCPUList(%q) = %v, %v", b, cpus, err)
	}
}

func FuzzParseCPUList(f *testing.F) {
	for _, s := range []string{"0\n", "0-1\n", "0-3,5", "0,2-3,6-7\n", "1-0", "", "8191"} {
		f.Add(s)
	}
	if b, err := os.ReadFile("/sys/devices/system/cpu/online"); err == nil {
		f.Add(string(b))
	}
	f.Fuzz(func(t *testing.T, s string) {
		cpus, err := ParseCPUList(s)
		if err != nil {
			return
		}
		if len(cpus) == 0 {
			t.Fatalf("ParseCPUList(%q): no error and no cpus", s)
		}
		for i, c := range cpus {
			if c < 0 || c > tracefs.MaxCPU || (i > 0 && c <= cpus[i-1]) {
				t.Fatalf("ParseCPUList(%q) = %v: not increasing within 0..%d", s, cpus, tracefs.MaxCPU)
			}
		}
		again, err := ParseCPUList(FormatCPUList(cpus))
		if err != nil || !reflect.DeepEqual(again, cpus) {
			t.Fatalf("round trip of %v via %q: %v, %v", cpus, FormatCPUList(cpus), again, err)
		}
	})
}
