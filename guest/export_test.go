package guest

import "testing"

// SetKallsymsForTest points the agent at a kallsyms and a kptr_restrict
// file of the test's until it ends. Call it before the agent starts.
func SetKallsymsForTest(t testing.TB, kallsyms, kptrRestrict string) {
	oldK, oldR := kallsymsPath, kptrRestrictPath
	kallsymsPath, kptrRestrictPath = kallsyms, kptrRestrict
	t.Cleanup(func() { kallsymsPath, kptrRestrictPath = oldK, oldR })
}

// SetCPUFilesForTest points the agent at lists of online and possible CPUs
// of the test's (files in the kernel's list syntax) until it ends: the
// machine's own CPUs must not be taken offline.
func SetCPUFilesForTest(t testing.TB, online, possible string) {
	old := cpuFiles
	cpuFiles.online, cpuFiles.possible = online, possible
	t.Cleanup(func() { cpuFiles = old })
}
