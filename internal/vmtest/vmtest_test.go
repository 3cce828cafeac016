package vmtest

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// A real guest's answer to "stats" after a spawn workload.
const statsReply = `VTRACE-STATS cpu=0 entries=10493 overrun=0 commit_overrun=0 bytes=396404 oldest_event_ts=4.102595 now_ts=12.357064 dropped_events=0 read_events=0
VTRACE-STATS cpu=1 entries=7381 overrun=0 commit_overrun=0 bytes=274568 oldest_event_ts=4.086191 now_ts=12.369239 dropped_events=0 read_events=0
`

func TestParseStats(t *testing.T) {
	got, err := ParseStats("VTRACE-CMD n=4 stats\n" + statsReply + "VTRACE-END n=4 rc=0\n")
	if err != nil {
		t.Fatal(err)
	}
	want := []CPUStats{
		{CPU: 0, Entries: 10493, Bytes: 396404, OldestEventTS: 4.102595, NowTS: 12.357064},
		{CPU: 1, Entries: 7381, Bytes: 274568, OldestEventTS: 4.086191, NowTS: 12.369239},
	}
	if len(got) != len(want) {
		t.Fatalf("got %d CPUs, want %d: %+v", len(got), len(want), got)
	}
	for i := range want {
		if got[i] != want[i] {
			t.Errorf("cpu %d:\n got %+v\nwant %+v", i, got[i], want[i])
		}
	}
	for _, bad := range []string{
		"VTRACE-STATS cpu=0 entries=1 overrun=0 bytes=x read_events=0",
		"VTRACE-STATS cpu=0 entries=1 bytes=2 read_events=0", // no overrun
		"VTRACE-STATS cpu=0 entries",
	} {
		if s, err := ParseStats(bad); err == nil {
			t.Errorf("ParseStats(%q) = %+v, want an error", bad, s)
		}
	}
}

func FuzzParseStats(f *testing.F) {
	f.Add(statsReply)
	f.Add("VTRACE-STATS cpu=3 entries=0 overrun=18446744073709551615 bytes=0 read_events=0\n")
	f.Fuzz(func(t *testing.T, s string) {
		stats, err := ParseStats(s)
		if err == nil && len(stats) > strings.Count(s, "VTRACE-STATS ") {
			t.Errorf("%d CPUs from %d stats lines", len(stats), strings.Count(s, "VTRACE-STATS "))
		}
	})
}

func TestTextWait(t *testing.T) {
	c := newText()
	exited := make(chan struct{})
	c.write([]byte("VTRACE-HEARTBEAT 1\r\nVTRACE-HEARTBEAT 2\r\nVTRACE-HEART"))
	m, _, end, err := c.wait(`^VTRACE-HEARTBEAT (\d+)$`, 0, time.Second, exited)
	if err != nil || m[1] != "1" {
		t.Fatalf("first wait: %q, %v; want heartbeat 1", m, err)
	}
	m, _, end, err = c.wait(`^VTRACE-HEARTBEAT (\d+)$`, end, time.Second, exited)
	if err != nil || m[1] != "2" {
		t.Fatalf("second wait: %q, %v; want heartbeat 2", m, err)
	}
	go c.write([]byte("BEAT 3\n"))
	m, start, _, err := c.wait(`^VTRACE-HEARTBEAT (\d+)$`, end, 10*time.Second, exited)
	if err != nil || m[1] != "3" {
		t.Fatalf("third wait: %q, %v; want heartbeat 3 (a line completed later)", m, err)
	}
	if start != end {
		t.Errorf("third line starts at %d, want %d", start, end)
	}
	close(exited)
	if _, _, _, err := c.wait(`^never`, 0, time.Minute, exited); err == nil {
		t.Error("wait after exit: no error")
	}
}

// A stand-in for run-guest.sh: the first boot shows no sign of life, the
// second gets ready; each "qemu" runs until killed, named after the FIFO
// directory so Processes finds it.
const fakeRunGuest = `#!/bin/bash
while getopts "nk:C:c:m:d:g:a:" o; do
	case $o in d) dir=$OPTARG ;; a) append=$OPTARG ;; esac
done
n=$(( $(cat "$dir/boots" 2>/dev/null || echo 0) + 1 ))
echo $n >"$dir/boots"
echo "fake boot $n: $append"
if [ $n = 2 ]; then
	echo "VTRACE-BOOT kernel=6.1.0-fake uptime=0.1"
	echo "VTRACE-PORT name=vtrace-test dev=/dev/vport0p1"
	echo "VTRACE-READY cpus=2"
fi
exec -a "fake-qemu $dir" sleep 600
`

func TestBootRebootsOnce(t *testing.T) {
	script := filepath.Join(t.TempDir(), "run-guest.sh")
	if err := os.WriteFile(script, []byte(fakeRunGuest), 0o755); err != nil {
		t.Fatal(err)
	}
	oldBuild, oldRun := buildGuest, runScript
	t.Cleanup(func() { buildGuest, runScript = oldBuild, oldRun })
	buildGuest = func(testing.TB, string) (string, string) { return "/nonexistent", "/nonexistent" }
	runScript = func(testing.TB) string { return script }

	dir := t.TempDir()
	t.Run("boot", func(t *testing.T) {
		g := Boot(t, Options{Dir: dir, ReadyTimeout: 2 * time.Second, Heartbeat: 1})
		if g.Boots != 2 {
			t.Errorf("ready after %d boots, want 2", g.Boots)
		}
		if got, want := g.Ports[TestPort], "/dev/vport0p1"; got != want {
			t.Errorf("port %s is %q, want %q", TestPort, got, want)
		}
		con := g.Console()
		for _, want := range []string{"fake boot 1: vtrace.heartbeat=1 vtrace.boot=1", "fake boot 2: vtrace.heartbeat=1 vtrace.boot=2"} {
			if !strings.Contains(con, want) {
				t.Errorf("console lacks %q:\n%s", want, con)
			}
		}
	})
	left, err := Processes(dir)
	if err != nil {
		t.Fatal(err)
	}
	if len(left) > 0 {
		t.Errorf("processes left after the test: %v", left)
	}
}
