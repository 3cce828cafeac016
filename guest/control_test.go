package guest_test

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/vtrace/vtrace/guest"
	"github.com/vtrace/vtrace/proto/wire"
)

// waitFile waits (30 s at most) until path holds want.
func waitFile(t *testing.T, path, want, why string) {
	t.Helper()
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(10 * time.Millisecond) {
		b, _ := os.ReadFile(path)
		if strings.TrimSpace(string(b)) == want {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: %s holds %q, want %q", why, path, b, want)
		}
	}
}

// TestIntegrationOrderAfterFalseFrameStart: whatever bytes that looked like
// the start of a frame came before, a line "1" written after them starts
// the agent with nothing more written, and a "0" stops it; then what was
// recorded arrives whole.
func TestIntegrationOrderAfterFalseFrameStart(t *testing.T) {
	inst := traceInstance(t, "vtrace-guest-falsestart", 0)
	cpus := onlineCPUs(t)
	dir := fifoDir(t, cpus)
	h := newHost(t, dir, inst, cpus)
	percent := filepath.Join(inst, "buffer_percent")
	write(t, percent, "42") // the agent lowers it to 10 while recording
	startAgent(t, guest.Config{Tracefs: inst, PortsDir: dir})

	frame := func(payload int) []byte {
		b, err := (&wire.Frame{Version: 1, Type: wire.TypeStart, Payload: make([]byte, payload)}).Append(nil)
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	oversized := frame(0)[:wire.HeaderLen]
	oversized[6], oversized[9] = 0xff, 0x7f // the header checksum no longer matches either
	for _, g := range []struct{ name, bytes string }{
		{"magic and two header bytes", "bin\xF6VT\x01\x02\n"},
		{"a sound header claiming 100 bytes", string(frame(100)[:wire.HeaderLen]) + "\n"},
		{"half a frame", string(frame(100)[:60]) + "\n"},
		{"a header with a bad checksum", string(oversized) + "\n"},
		{"a magic without a newline after it", "\xF6VT"},
	} {
		h.send(g.bytes)
		h.send("\n1\n")
		waitFile(t, percent, "10", "after "+g.name+", then a line 1")
		h.send("0\n")
		waitFile(t, percent, "42", "after "+g.name+", then 1 and 0")
	}
	tracing(t, inst, false)
	h.send("1\n0\n") // what was recorded since the last stop
	h.caughtUp(inst)
}
