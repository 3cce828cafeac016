package guest

import (
	"strings"
	"testing"
)

// TestCheckSubbufKiB: the sizes the kernel takes are a power of two from
// one memory page to 128 of them.
func TestCheckSubbufKiB(t *testing.T) {
	for _, tc := range []struct {
		kib  uint32
		page int
		ok   bool
	}{
		{4, 4096, true}, {8, 4096, true}, {512, 4096, true},
		{2, 4096, false}, {12, 4096, false}, {1024, 4096, false},
		{64, 65536, true}, {32, 65536, false}, {8192, 65536, true}, {16384, 65536, false},
	} {
		err := checkSubbufKiB(tc.kib, tc.page)
		if (err == nil) != tc.ok {
			t.Errorf("checkSubbufKiB(%d KiB, pages of %d) = %v, want ok %t", tc.kib, tc.page, err, tc.ok)
		}
		if err != nil && !strings.Contains(err.Error(), "power of two") {
			t.Errorf("checkSubbufKiB(%d KiB, pages of %d) = %v, want it to say what is taken", tc.kib, tc.page, err)
		}
	}
}

// TestNoSubbufFileNamesTheKernel: the error for a kernel without the file
// names the kernel that has it.
func TestNoSubbufFileNamesTheKernel(t *testing.T) {
	msg := noSubbufFile()
	for _, w := range []string{"buffer_subbuf_size_kb", "Linux 6.8", "this guest runs Linux "} {
		if !strings.Contains(msg, w) {
			t.Errorf("%q does not say %q", msg, w)
		}
	}
}
