package guest

import "testing"

// SetKallsymsForTest points the agent at a kallsyms and a kptr_restrict
// file of the test's until it ends. Call it before the agent starts.
func SetKallsymsForTest(t testing.TB, kallsyms, kptrRestrict string) {
	oldK, oldR := kallsymsPath, kptrRestrictPath
	kallsymsPath, kptrRestrictPath = kallsyms, kptrRestrict
	t.Cleanup(func() { kallsymsPath, kptrRestrictPath = oldK, oldR })
}
