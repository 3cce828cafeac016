package sys

import (
	"errors"
	"os"
	"path/filepath"
	"testing"
)

func TestMkfifoAndOpen(t *testing.T) {
	p := filepath.Join(t.TempDir(), "f")
	if err := Mkfifo(p, 0o600); err != nil {
		t.Fatal(err)
	}
	st, err := os.Lstat(p)
	if err != nil || st.Mode()&os.ModeNamedPipe == 0 {
		t.Fatalf("mkfifo made %v, %v", st, err)
	}
	if err := Mkfifo(p, 0o600); !errors.Is(err, os.ErrExist) {
		t.Fatalf("second mkfifo: %v, want ErrExist", err)
	}
	if _, err := Open(filepath.Join(t.TempDir(), "missing"), os.O_RDONLY, 0); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("open missing: %v", err)
	}
}
