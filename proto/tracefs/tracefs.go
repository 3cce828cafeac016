// Package tracefs holds the facts about CPU numbers that the guest, the
// wire protocol and the host share: the largest CPU number, the per_cpu/cpuN
// paths of a tracefs directory, and the one parser of names that carry a
// CPU number (per_cpu's cpuN, the data channels' trace-path-cpuN, a
// capture's cpuN.raw), and the one parser of per_cpu/cpuN/stats. It is
// pure Go: it builds and reads strings only.
package tracefs

import (
	"path/filepath"
	"strconv"
	"strings"
)

// MaxCPU is the largest CPU number: the kernel numbers CPUs from 0 to
// NR_CPUS-1, and x86-64's CONFIG_NR_CPUS is at most 8192 (arch/x86/Kconfig,
// NR_CPUS_RANGE_END with MAXSMP), the largest of any architecture vtrace
// runs on. Every list, name and message that carries a CPU number accepts
// 0..MaxCPU and nothing above.
const MaxCPU = 8191

// PerCPU returns DIR/per_cpu/cpuN/FILE: the per-CPU file of a tracefs mount
// point or instance dir (trace_pipe_raw, stats), or, when file is "", the
// CPU's directory.
func PerCPU(dir string, cpu int, file string) string {
	return filepath.Join(dir, "per_cpu", "cpu"+strconv.Itoa(cpu), file)
}

// CPUFromName returns N for a name PREFIX N SUFFIX ("cpu3" with prefix
// "cpu", "cpu3.raw" with suffix ".raw", "trace-path-cpu3"), where N is a
// CPU number from 0 to MaxCPU written in decimal without sign or leading
// zeros. Any other name gives false.
func CPUFromName(name, prefix, suffix string) (int, bool) {
	num, ok := strings.CutPrefix(name, prefix)
	if !ok {
		return 0, false
	}
	if num, ok = strings.CutSuffix(num, suffix); !ok || num == "" || len(num) > len(strconv.Itoa(MaxCPU)) {
		return 0, false
	}
	if len(num) > 1 && num[0] == '0' {
		return 0, false
	}
	n := 0
	for i := 0; i < len(num); i++ {
		c := num[i]
		if c < '0' || c > '9' {
			return 0, false
		}
		n = n*10 + int(c-'0')
	}
	if n > MaxCPU {
		return 0, false
	}
	return n, true
}
