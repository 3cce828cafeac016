package main

import (
	"testing"

	"github.com/vtrace/vtrace/internal/testutil"
)

// TestMain removes the built vtrace and stops the private libvirtd the
// error tests start.
func TestMain(m *testing.M) { testutil.Main(m, testutil.StopLibvirtds) }
