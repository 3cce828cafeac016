package hosttrace_test

import (
	"testing"

	"github.com/vtrace/vtrace/internal/testutil"
)

// TestMain removes the built vtrace when the tests are done.
func TestMain(m *testing.M) { testutil.Main(m) }
