package main

import (
	"testing"

	"github.com/vtrace/vtrace/internal/testutil"
)

func TestMain(m *testing.M) { testutil.Main(m) }
