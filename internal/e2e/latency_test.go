package e2e

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/vtrace/vtrace/internal/vmtest"
	"github.com/vtrace/vtrace/proto/ringbuf"
)

// TestIntegrationLatencyGuest: the guest writes one numbered trace_marker
// every 100 ms for 5 s, then nothing, while `vtrace host collect --start
// --latency 500ms` collects and never sends a stop. Every marker is in the
// host's cpuN.raw files within the latency plus a slack of 500 ms of being
// written: 1 s in all.
//
// The marker's writing time is when its console line, printed just before
// the marker, reached the host (so a late console only makes the measured
// time longer); its arrival is when the test, polling every 10 ms, found it
// in a file. The slack covers what the latency does not: the agent aims at
// nine tenths of it from the event's wake-up, and then, under TCG, the
// guest has to schedule it, move the pages through virtio-serial and qemu
// into the FIFO, collect has to splice them into the file, and the test has
// to see both the console line and the file.
//
// Afterwards the stop finds every marker exactly once in the files.
func TestIntegrationLatencyGuest(t *testing.T) {
	logDuration(t)
	const (
		latency = 500 * time.Millisecond
		slack   = 500 * time.Millisecond
		count   = 50
	)
	g := vmtest.Boot(t, vmtest.Options{CPUs: 2, Events: "none"})
	out := filepath.Join(t.TempDir(), "capture")
	c := startCollect(t, g, out, "--start", "--latency", latency.String())
	if _, err := g.WaitFor(`level=DEBUG msg=streaming cpu=\d+ from=\S+ latency=500ms`, 60*time.Second); err != nil {
		t.Fatalf("the agent did not take the host's latency: %v", err)
	}

	from := len(g.Console())
	script := fmt.Sprintf(`i=1; while [ $i -le %d ]; do echo "VTRACE-LATENCY $i" >/dev/console; `+
		`echo "vtrace-latency $i" >/sys/kernel/tracing/trace_marker; i=$((i + 1)); usleep 100000; done`, count)
	done := make(chan error, 1)
	go func() {
		_, err := g.CommandWithin(2*time.Minute, "sh", script)
		done <- err
	}()

	written := map[int]time.Time{}
	arrived := map[int]time.Time{}
	consoleLine := regexp.MustCompile(`(?m)^VTRACE-LATENCY (\d+)$`)
	deadline := time.Now().Add(2 * time.Minute)
	for len(arrived) < count || len(written) < count {
		if time.Now().After(deadline) {
			t.Fatalf("after 2 minutes: %d of %d markers written (console), %d in the host's files", len(written), count, len(arrived))
		}
		now := time.Now()
		for _, m := range consoleLine.FindAllStringSubmatch(g.Console()[from:], -1) {
			n, _ := strconv.Atoi(m[1])
			if _, ok := written[n]; !ok {
				written[n] = now
			}
		}
		for n := range latencyMarkers(t, out, g.CPUs) {
			if _, ok := arrived[n]; !ok {
				arrived[n] = now
			}
		}
		time.Sleep(10 * time.Millisecond)
	}
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	var worst time.Duration
	for n := 1; n <= count; n++ {
		d := arrived[n].Sub(written[n])
		worst = max(worst, d)
		if d > latency+slack {
			t.Errorf("marker %d reached the host's files %v after it was written, want %v at most (latency %v + slack %v)",
				n, d.Round(time.Millisecond), latency+slack, latency, slack)
		}
	}
	t.Logf("markers reached the host's files at most %v after they were written", worst.Round(time.Millisecond))

	c.stop(syscall.SIGTERM)
	for n, k := range latencyMarkers(t, out, g.CPUs) {
		if k != 1 {
			t.Errorf("marker %d is %d times in the capture, want once", n, k)
		}
	}
}

// latencyMarkers counts the markers "vtrace-latency N" in the whole pages
// of the capture's cpuN.raw files so far, by N.
func latencyMarkers(t testing.TB, out string, cpus int) map[int]int {
	t.Helper()
	l := ringbuf.DefaultLayout()
	found := map[int]int{}
	for cpu := 0; cpu < cpus; cpu++ {
		b, err := os.ReadFile(filepath.Join(out, fmt.Sprintf("cpu%d.raw", cpu)))
		if err != nil {
			continue // not made yet
		}
		b = b[:len(b)/l.PageSize*l.PageSize]
		if _, err := ringbuf.Scan(l, bytes.NewReader(b), func(r ringbuf.Record) error {
			if i := bytes.Index(r.Payload, []byte("vtrace-latency ")); i >= 0 {
				if f := strings.Fields(string(r.Payload[i:])); len(f) > 1 {
					if n, err := strconv.Atoi(strings.TrimRight(f[1], "\x00")); err == nil {
						found[n]++
					}
				}
			}
			return nil
		}); err != nil {
			t.Fatalf("parse %s: %v", fmt.Sprintf("cpu%d.raw", cpu), err)
		}
	}
	return found
}
