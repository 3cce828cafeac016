//go:build vmbench

package e2e

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/vtrace/vtrace/internal/vmtest"
)

// TestBenchVM measures, in one boot of the test guest, the raw throughput of
// a virtio-serial port (dd of zeros, agent stopped), what the agent carries
// from full ring buffers, and the share of events lost at rising event rates
// and ring-buffer sizes. It is built only with the tag vmbench
// (scripts/bench-vm.sh) and writes a markdown table to $VTRACE_BENCH_OUT
// (default: the test log only).
func TestBenchVM(t *testing.T) {
	logDuration(t)
	g := vmtest.Boot(t, vmtest.Options{CPUs: 2})
	var md strings.Builder
	row := func(format string, a ...any) {
		fmt.Fprintf(&md, format+"\n", a...)
		t.Logf(format, a...)
	}

	// Raw port: the agent holds the ports, so stop it first.
	command(t, g, "kill-agent")
	row("| raw port (guest `dd` of zeros into trace-path-cpu0, host reads the FIFO) | block | MB | MB/s |")
	row("|---|---|---|---|")
	raw := 0.0
	for _, bs := range []int{65536, 4096} {
		count := (64 << 20) / bs
		tp, err := g.PortThroughput("trace-path-cpu0", count, bs)
		if err != nil {
			t.Fatal(err)
		}
		row("| one port | %d KiB | %.0f | %.1f |", bs>>10, float64(tp.Bytes)/1e6, tp.MBps())
		if bs == 65536 {
			raw = tp.MBps()
		}
	}

	// The agent draining full buffers: fill them with 1 KiB markers while no
	// agent runs, tracing off, then start the agent and time the host's
	// last byte.
	const fillKB = 49152
	command(t, g, "trace", "buffer_kb", fmt.Sprint(fillKB))
	command(t, g, "trace", "clear")
	bigMarkers(t, g, fillKB*2/3) // 3 markers a page: about 90% of the buffer
	command(t, g, "trace", "off")
	command(t, g, "start-agent")
	before := stats(t, g)
	out := filepath.Join(t.TempDir(), "drain")
	// Timed from the agent's start (the handshake and the metadata transfer
	// come before it and are not the data path), counting only the bytes
	// that arrive from then on.
	c := startCollect(t, g, out, "--start")
	begin, early := time.Now(), sizeOf(rawFiles(out, g.CPUs))
	last := waitQuiet(t, rawFiles(out, g.CPUs), time.Second, 5*time.Minute)
	c.stop(syscall.SIGTERM)
	after := stats(t, g)
	got := scanCaptures(t, g.CPUs, out)
	var bytes, events int64
	for _, cc := range got {
		bytes += cc.Bytes
		events += cc.Events
	}
	secs := last.Sub(begin).Seconds()
	agentMBps := float64(bytes-early) / secs / 1e6
	row("")
	row("| agent, full %d MiB buffers on %d CPUs (1 KiB markers) | MB | events | s | MB/s | events/s | vs raw port |", fillKB>>10, g.CPUs)
	row("|---|---|---|---|---|---|---|")
	row("| `vtrace host collect --start`, to the host's last byte | %.1f | %d | %.2f | %.1f | %.0f | %.0f%% |",
		float64(bytes)/1e6, events, secs, agentMBps, float64(events)*float64(bytes-early)/float64(bytes)/secs, 100*agentMBps/raw)
	lostCheck(t, got, before, after)

	// Loss at rising event rates and buffer sizes, the agent streaming live.
	row("")
	row("| workload (both CPUs, 4 s; sched+irq on) | buffer KiB/CPU | events/s reaching the host | MB/s | lost (overrun / recorded) |")
	row("|---|---|---|---|---|")
	loads := []struct{ name, arg string }{
		{"marker", "1000"}, {"marker", "100"}, {"marker", "0"}, {"big", ""},
	}
	for _, kb := range []int{64, 1024} {
		command(t, g, "kill-agent")
		command(t, g, "trace", "buffer_kb", fmt.Sprint(kb))
		command(t, g, "trace", "on")
		command(t, g, "start-agent")
		for _, l := range loads {
			out := filepath.Join(t.TempDir(), "load")
			// Counted from the agent's start: while collect fetches the
			// metadata nobody reads, and a 64 KiB buffer overruns then.
			c := startCollect(t, g, out, "--start")
			before := stats(t, g)
			begin := time.Now()
			label := fmt.Sprintf("marker, %s µs apart", l.arg)
			if l.name == "big" {
				label = "1 KiB markers flat out (4000 per CPU)"
				bigMarkers(t, g, 4000)
			} else {
				runWorkload(t, g, l.name, 4, l.arg)
			}
			secs := time.Since(begin).Seconds()
			c.stop(syscall.SIGTERM)
			after := stats(t, g)
			got := scanCaptures(t, g.CPUs, out)
			var bytes, events int64
			var overrun, recorded uint64
			for cpu, cc := range got {
				bytes += cc.Bytes
				events += cc.Events
				o := after[cpu].Overrun - before[cpu].Overrun
				overrun += o
				recorded += o + after[cpu].ReadEvents - before[cpu].ReadEvents + after[cpu].Entries - before[cpu].Entries
			}
			row("| %s | %d | %.0f | %.2f | %d / %d (%.2f%%) |", label, kb,
				float64(events)/secs, float64(bytes)/secs/1e6, overrun, recorded, 100*float64(overrun)/float64(max(recorded, 1)))
		}
	}
	if p := os.Getenv("VTRACE_BENCH_OUT"); p != "" {
		if err := os.WriteFile(p, []byte(md.String()), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

// lostCheck logs, per CPU, whether the events handed out all arrived.
func lostCheck(t testing.TB, got []cpuCapture, before, after []vmtest.CPUStats) {
	for cpu, c := range got {
		read := after[cpu].ReadEvents - before[cpu].ReadEvents
		if uint64(c.Events) != read {
			t.Errorf("cpu %d: the host parsed %d events, the guest handed out %d", cpu, c.Events, read)
		}
	}
}

// sizeOf sums the sizes of the files that exist.
func sizeOf(files []string) int64 {
	var n int64
	for _, f := range files {
		if st, err := os.Stat(f); err == nil {
			n += st.Size()
		}
	}
	return n
}
