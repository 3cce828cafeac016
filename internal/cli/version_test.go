package cli

import (
	"strings"
	"testing"
)

func TestBuildShort(t *testing.T) {
	for _, tc := range []struct {
		b    Build
		want string
	}{
		{Build{}, "dev"},
		{Build{Version: "(devel)"}, "dev"},
		{Build{Version: "v1.2.3", Revision: "0123456789abcdef"}, "v1.2.3"},
		{Build{Version: "v0.0.0-20260301120000-0123456789ab+dirty"}, "v0.0.0-20260301120000-0123456789ab+dirty"},
		{Build{Version: "(devel)", Revision: "0123456789abcdef0123"}, "devel-0123456789ab"},
		{Build{Version: "(devel)", Revision: "0123456789abcdef0123", Modified: true}, "devel-0123456789ab+dirty"},
		{Build{Revision: "abc"}, "devel-abc"},
	} {
		if got := tc.b.Short(); got != tc.want {
			t.Errorf("%+v.Short() = %q, want %q", tc.b, got, tc.want)
		}
	}
}

func TestBuildWrite(t *testing.T) {
	b := Build{Module: "github.com/vtrace/vtrace", Version: "v1.2.3", Revision: "0123456789abcdef", Time: "2026-03-01T12:00:00Z",
		Modified: true, Go: "go1.26.0", Platform: "linux/amd64"}
	var sb strings.Builder
	if err := b.Write(&sb, "vtrace"); err != nil {
		t.Fatal(err)
	}
	want := `vtrace v1.2.3
  module:   github.com/vtrace/vtrace
  revision: 0123456789abcdef (modified)
  time:     2026-03-01T12:00:00Z
  go:       go1.26.0 linux/amd64
`
	if sb.String() != want {
		t.Errorf("report:\n%s\nwant:\n%s", sb.String(), want)
	}
}

// TestReadBuildGo: a test binary has build information: at least the Go
// version.
func TestReadBuildGo(t *testing.T) {
	if b := ReadBuild(); !strings.HasPrefix(b.Go, "go1.") {
		t.Errorf("ReadBuild().Go = %q, want go1.N", b.Go)
	}
}
