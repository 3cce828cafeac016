package virt

import (
	"os"
	"testing"

	"github.com/vtrace/vtrace/internal/testutil"
)

// TestMain stops the private libvirtds the tests started and removes the
// domains' boot files and the built vtrace.
func TestMain(m *testing.M) {
	testutil.Main(m, func() error {
		if bootDir != "" {
			os.RemoveAll(bootDir)
		}
		return testutil.StopLibvirtds()
	})
}
