package orders

import (
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/vtrace/vtrace/internal/sys"
)

// ctlFIFO makes DIR/agent-ctl-path.in in a fresh directory and returns DIR.
func ctlFIFO(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	if err := sys.Mkfifo(Path(dir), 0o600); err != nil {
		t.Fatal(err)
	}
	return dir
}

func TestSendNoReader(t *testing.T) {
	dir := ctlFIFO(t)
	err := Send(context.Background(), dir, Start, 200*time.Millisecond)
	if !errors.Is(err, ErrNoReader) {
		t.Fatalf("Send with nobody reading: got %v, want an error wrapping ErrNoReader", err)
	}
	for _, want := range []string{Path(dir), "is the guest running"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not mention %q", err, want)
		}
	}
}

func TestSendCancelled(t *testing.T) {
	dir := ctlFIFO(t)
	ctx, cancel := context.WithCancelCause(context.Background())
	why := errors.New("interrupted")
	cancel(why)
	// The timeout is far away: only the context can end this call.
	if err := Send(ctx, dir, Stop, time.Hour); !errors.Is(err, why) {
		t.Fatalf("Send with a cancelled context: got %v, want an error wrapping %v", err, why)
	}
}

func TestSendMissingOrNotFIFO(t *testing.T) {
	dir := t.TempDir()
	err := Send(context.Background(), dir, Start, time.Second)
	if err == nil || !strings.Contains(err.Error(), "vtrace host setup") {
		t.Errorf("Send without a FIFO: got %v, want an error pointing to vtrace host setup", err)
	}
	if err := os.WriteFile(Path(dir), nil, 0o600); err != nil {
		t.Fatal(err)
	}
	err = Send(context.Background(), dir, Start, time.Second)
	if err == nil || !strings.Contains(err.Error(), "not a FIFO") {
		t.Errorf("Send into a regular file: got %v, want a not-a-FIFO error", err)
	}
	if b, _ := os.ReadFile(Path(dir)); len(b) != 0 {
		t.Errorf("Send wrote %q into a regular file", b)
	}
}

func TestSendUnknownOrder(t *testing.T) {
	if err := Send(context.Background(), t.TempDir(), Order('x'), time.Second); err == nil {
		t.Fatal("Send of an unknown order succeeded")
	}
}

// TestSendOneReadPerOrder reads the FIFO the way the kernel's C agent does,
// one read(2) per order: each must return exactly "1\n" or "0\n".
func TestSendOneReadPerOrder(t *testing.T) {
	dir := ctlFIFO(t)
	r, err := os.OpenFile(Path(dir), os.O_RDWR, 0) // does not block, like qemu's open
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	for _, o := range []Order{Start, Stop, Start} {
		if err := Send(context.Background(), dir, o, time.Second); err != nil {
			t.Fatalf("Send %v: %v", o, err)
		}
		buf := make([]byte, 64)
		n, err := r.Read(buf)
		if err != nil {
			t.Fatal(err)
		}
		if got, want := string(buf[:n]), string([]byte{byte(o), '\n'}); got != want {
			t.Errorf("one read after Send %v: got %q, want %q", o, got, want)
		}
	}
}

// TestIntegrationSendHeldOpenNeverRead: a process holds the FIFO open and
// never reads it, as qemu does when no agent runs in the guest. The line
// protocol has no acknowledgement, so the orders are accepted and wait in
// the FIFO.
func TestIntegrationSendHeldOpenNeverRead(t *testing.T) {
	dir := ctlFIFO(t)
	holder := exec.Command("sh", "-c", `exec sleep 600 <>"$1"`, "sh", Path(dir))
	if err := holder.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { holder.Process.Kill(); holder.Wait() })
	// Send retries until the holder has opened the FIFO.
	for _, o := range []Order{Start, Stop} {
		if err := Send(context.Background(), dir, o, 10*time.Second); err != nil {
			t.Fatalf("Send %v to a FIFO held open: %v", o, err)
		}
	}
	fd, err := sys.Open(Path(dir), sys.FIFOReadNonblock, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer sys.Close(fd)
	buf := make([]byte, 64)
	n, err := sys.Read(fd, buf)
	if err != nil {
		t.Fatal(err)
	}
	if got := string(buf[:n]); got != "1\n0\n" {
		t.Errorf("FIFO holds %q, want %q", got, "1\n0\n")
	}
}

func TestPath(t *testing.T) {
	if got, want := Path("/var/lib/vtrace/vm"), filepath.Join("/var/lib/vtrace/vm", "agent-ctl-path.in"); got != want {
		t.Errorf("Path: got %q, want %q", got, want)
	}
}
