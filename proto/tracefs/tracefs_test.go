package tracefs

import (
	"strconv"
	"testing"
)

func TestCPUFromName(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name, prefix, suffix string
		want                 int // -1: not a CPU name
	}{
		{"cpu0.raw", "cpu", ".raw", 0},
		{"cpu12.raw", "cpu", ".raw", 12},
		{"cpu5000.raw", "cpu", ".raw", 5000},
		{"cpu8191.raw", "cpu", ".raw", MaxCPU},
		{"cpu8192.raw", "cpu", ".raw", -1},
		{"cpu99999.raw", "cpu", ".raw", -1},
		{"cpu01.raw", "cpu", ".raw", -1},
		{"cpu.raw", "cpu", ".raw", -1},
		{"cpu-1.raw", "cpu", ".raw", -1},
		{"cpu+1.raw", "cpu", ".raw", -1},
		{"cpu1.raw.tmp", "cpu", ".raw", -1},
		{"cpu1x.raw", "cpu", ".raw", -1},
		{"cpu3", "cpu", "", 3},
		{"cpu", "cpu", "", -1},
		{"cpu 3", "cpu", "", -1},
		{"trace-path-cpu17", "trace-path-cpu", "", 17},
		{"trace-path-cpu1234567", "trace-path-cpu", "", -1},
		{"agent-ctl-path", "trace-path-cpu", "", -1},
		{"xcpu3", "cpu", "", -1},
	} {
		n, ok := CPUFromName(tc.name, tc.prefix, tc.suffix)
		if tc.want < 0 && ok || tc.want >= 0 && (!ok || n != tc.want) {
			t.Errorf("CPUFromName(%q, %q, %q) = %d, %v; want %d", tc.name, tc.prefix, tc.suffix, n, ok, tc.want)
		}
	}
}

// TestCPUFromNameEvery: every CPU number reads back, the one above does not.
func TestCPUFromNameEvery(t *testing.T) {
	t.Parallel()
	for cpu := 0; cpu <= MaxCPU+1; cpu++ {
		n, ok := CPUFromName("cpu"+strconv.Itoa(cpu), "cpu", "")
		if want := cpu <= MaxCPU; ok != want || ok && n != cpu {
			t.Fatalf("CPUFromName(cpu%d) = %d, %v; want ok %v", cpu, n, ok, want)
		}
	}
}

func TestPerCPU(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		dir  string
		cpu  int
		file string
		want string
	}{
		{"/sys/kernel/tracing", 3, "trace_pipe_raw", "/sys/kernel/tracing/per_cpu/cpu3/trace_pipe_raw"},
		{"/sys/kernel/tracing/instances/vtrace/", 5000, "stats", "/sys/kernel/tracing/instances/vtrace/per_cpu/cpu5000/stats"},
		{"t", 0, "", "t/per_cpu/cpu0"},
	} {
		if got := PerCPU(tc.dir, tc.cpu, tc.file); got != tc.want {
			t.Errorf("PerCPU(%q, %d, %q) = %q, want %q", tc.dir, tc.cpu, tc.file, got, tc.want)
		}
	}
}

func FuzzCPUFromName(f *testing.F) {
	f.Add("cpu12.raw")
	f.Add("cpu012.raw")
	f.Add("cpu8192.raw")
	f.Fuzz(func(t *testing.T, name string) {
		n, ok := CPUFromName(name, "cpu", ".raw")
		if !ok {
			return
		}
		if n < 0 || n > MaxCPU || "cpu"+strconv.Itoa(n)+".raw" != name {
			t.Fatalf("CPUFromName(%q) = %d: not the name's one spelling", name, n)
		}
	})
}
