package collect_test

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/vtrace/vtrace/host/collect"
	"github.com/vtrace/vtrace/host/fifo"
	"github.com/vtrace/vtrace/host/session"
	"github.com/vtrace/vtrace/internal/testutil"
	"github.com/vtrace/vtrace/proto/channel"
	"github.com/vtrace/vtrace/proto/wire"
)

// lineAgent stands in for the kernel's C agent on a private instance: it
// never writes to the control port, takes an order only when one read
// returns exactly "1\n" or "0\n", and streams each CPU's trace_pipe_raw
// with cat while started. It returns the orders it obeyed.
func lineAgent(t *testing.T, inst, dir string, cpus int) func() []string {
	t.Helper()
	in, _ := fifo.Paths(dir, channel.Ctl)
	ctl, err := os.OpenFile(in, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	var orders []string
	var cats []func()
	stop := func() {
		for _, stop := range cats {
			stop()
		}
		cats = nil
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		buf := make([]byte, 4096)
		for {
			n, err := ctl.Read(buf)
			if err != nil {
				return
			}
			mu.Lock()
			switch string(buf[:n]) {
			case "1\n":
				orders = append(orders, "1")
				for cpu := range cpus {
					_, path := fifo.Paths(dir, channel.Data(cpu))
					raw := filepath.Join(inst, "per_cpu", "cpu"+strconv.Itoa(cpu), "trace_pipe_raw")
					cats = append(cats, testutil.CatPipeRaw(t, raw, path))
				}
			case "0\n":
				orders = append(orders, "0")
				stop()
			}
			mu.Unlock()
		}
	}()
	t.Cleanup(func() {
		ctl.Close()
		<-done
		stop()
	})
	return func() []string {
		mu.Lock()
		defer mu.Unlock()
		return append([]string(nil), orders...)
	}
}

// TestIntegrationCollectLineProtocolFallback: against an agent that does
// not answer the handshake, collect --start says so, uses the bare orders and
// captures raw pages; settings are refused before anything is made.
func TestIntegrationCollectLineProtocolFallback(t *testing.T) {
	testutil.CheckFDs(t)
	inst, cpus, dir := loopback(t, "vtrace-collect-line")
	writeTracefs(t, filepath.Join(inst, "events/sched/enable"), "1")
	testutil.HoldStreams(t, dir, cpus)
	orders := lineAgent(t, inst, dir, cpus)
	out := filepath.Join(t.TempDir(), "capture")

	cfg := collect.Config{Dir: dir, Out: out, Start: true, HandshakeTimeout: 300 * time.Millisecond,
		Settings: wire.Settings{Events: []string{"sched:sched_switch"}}}
	if _, err := collect.Run(context.Background(), cfg); !errors.Is(err, session.ErrLineProtocol) || !errors.Is(err, session.ErrNoSettings) {
		t.Fatalf("Run with events against a line-protocol agent: %v, want ErrLineProtocol and ErrNoSettings", err)
	}
	if _, err := os.Stat(out); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("the refused capture left %s behind: %v", out, err)
	}

	var log bytes.Buffer
	cfg.Settings, cfg.Log, cfg.Duration = wire.Settings{}, &log, time.Second
	r := <-runAsync(context.Background(), cfg)
	if r.err != nil {
		t.Fatalf("Run: %v", r.err)
	}
	if !strings.Contains(log.String(), "no vtrace agent answered") || !strings.Contains(log.String(), "raw pages only") {
		t.Errorf("no notice that the agent did not answer: %q", log.String())
	}
	if got := strings.Join(orders(), ""); got != "10" {
		t.Errorf("the line-protocol agent obeyed %q, want start then stop", got)
	}
	if n := checkCapture(t, out, cpus); n == 0 {
		t.Error("the capture is empty")
	}
	for _, name := range []string{collect.MetaDir, collect.TraceDat} {
		if _, err := os.Stat(filepath.Join(out, name)); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("a line-protocol capture made %s: %v", name, err)
		}
	}
}

// TestIntegrationHostCommandsLineProtocolFallback: the binary's start, stop and
// status against an agent that does not answer.
func TestIntegrationHostCommandsLineProtocolFallback(t *testing.T) {
	inst, cpus, dir := loopback(t, "vtrace-cmds-line")
	testutil.HoldStreams(t, dir, cpus)
	orders := lineAgent(t, inst, dir, cpus)
	run := func(args ...string) (string, error) {
		return hostCommand(t, dir, append(args, "--handshake-timeout", "300ms")...)
	}
	out, err := run("start", "--events", "sched")
	if err == nil || !strings.Contains(out, "cannot apply settings") || !strings.Contains(out, "drop --events") {
		t.Errorf("start --events against a line-protocol agent: %v\n%s", err, out)
	}
	out, err = run("status")
	if err == nil || !strings.Contains(out, "no vtrace agent answered") {
		t.Errorf("status against a line-protocol agent: %v\n%s", err, out)
	}
	for _, cmd := range []string{"start", "stop"} {
		out, err := run(cmd)
		if err != nil || !strings.Contains(out, "no vtrace agent answered") || !strings.Contains(out, "sent the "+cmd+" order") {
			t.Errorf("%s against a line-protocol agent: %v\n%s", cmd, err, out)
		}
	}
	give := time.Now().Add(time.Minute) // a guard against a hang, not a measure
	for len(orders()) < 2 && time.Now().Before(give) {
		time.Sleep(20 * time.Millisecond)
	}
	if got := strings.Join(orders(), ""); got != "10" {
		t.Errorf("the line-protocol agent obeyed %q, want start then stop", got)
	}
}
