package fifo

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/vtrace/vtrace/internal/sys"
)

func TestOpen(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "agent-ctl-path.out")
	if err := sys.Mkfifo(p, 0o600); err != nil {
		t.Fatal(err)
	}
	fd, err := Open(p, sys.FIFOReadNonblock)
	if err != nil {
		t.Fatalf("Open of a FIFO: %v", err)
	}
	sys.Close(fd)

	reg := filepath.Join(dir, "regular")
	if err := os.WriteFile(reg, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := Open(reg, sys.FIFOReadNonblock); err == nil || !strings.Contains(err.Error(), "not a FIFO") {
		t.Errorf("Open of a regular file: %v, want not a FIFO", err)
	}
	if _, err := Open(filepath.Join(dir, "missing"), sys.FIFOReadNonblock); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("Open of a missing path: %v, want ErrNotExist", err)
	}
	// Nobody reads it: the write open fails with ENXIO, returned as it is.
	q := filepath.Join(dir, "agent-ctl-path.in")
	if err := sys.Mkfifo(q, 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := Open(q, sys.FIFOWriteNonblock); !errors.Is(err, sys.ENXIO) {
		t.Errorf("write Open with no reader: %v, want ENXIO", err)
	}
}
