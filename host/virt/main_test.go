package virt

import (
	"fmt"
	"os"
	"testing"

	"github.com/vtrace/vtrace/internal/testutil"
)

// TestMain stops the private libvirtds the tests started and removes the
// domains' boot files.
func TestMain(m *testing.M) {
	code := m.Run()
	if bootDir != "" {
		os.RemoveAll(bootDir)
	}
	if err := testutil.StopLibvirtds(); err != nil {
		fmt.Fprintln(os.Stderr, err)
		code = 1
	}
	os.Exit(code)
}
