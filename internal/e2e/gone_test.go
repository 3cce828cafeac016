package e2e

import (
	"errors"
	"fmt"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/vtrace/vtrace/internal/testutil"
	"github.com/vtrace/vtrace/internal/vmtest"
)

// markerMargin is how many of the last markers a guest wrote before it
// died the tests do not require on the host: the agent's latency (1 s by
// default) at one marker every 10 ms is 100 markers, twice that for the
// busy TCG guest. The console's last number bounds the markers written.
const markerMargin = 200

// markersThenDie is a guest shell line (for the test port's "sh") that
// writes n numbered trace_marker lines, one every 10 ms (padded, so that
// pages fill), prints the latest number on the console every 100 (about
// once a second), and then runs die, all in the background.
func markersThenDie(n int, die string) string {
	script := fmt.Sprintf(`p=%s; i=0; while [ $i -lt %d ]; do i=$((i + 1)); `+
		`echo "vtrace-mark $i $p" >/sys/kernel/tracing/trace_marker; `+
		`[ $((i %% 100)) -eq 0 ] && echo "VTRACE-MARK n=$i"; usleep 10000; done; %s`,
		strings.Repeat("x", 160), n, die)
	return fmt.Sprintf(`sh setsid sh -c '%s' </dev/null >/dev/console 2>&1 &`, script)
}

var markLine = regexp.MustCompile(`print:.*vtrace-mark (\d+) x+\s*$`)

// markersIn returns the numbers of the vtrace-mark markers trace-cmd
// reads in file.
func markersIn(t testing.TB, file string) map[int]bool {
	t.Helper()
	tc := testutil.NeedProgram(t, "trace-cmd", "trace-cmd")
	out, err := exec.Command(tc, "report", "-i", file).Output()
	if err != nil {
		t.Fatalf("trace-cmd report -i %s: %v", file, err)
	}
	got := map[int]bool{}
	for _, line := range strings.Split(string(out), "\n") {
		if m := markLine.FindStringSubmatch(line); m != nil {
			n, _ := strconv.Atoi(m[1])
			got[n] = true
		}
	}
	return got
}

// TestIntegrationGuestGone: a real guest dies mid-capture while it writes
// numbered markers, every 10 ms, printing the latest number on its console
// once a second: its kernel panics (panic=0: it hangs, qemu runs on and the
// agent goes silent), or it powers off without warning (qemu exits).
// `vtrace host collect --start` ends by itself, exits with status 1, says
// the guest went away, and its trace.dat, which trace-cmd reads, holds
// every marker written more than the agent's latency before the end.
func TestIntegrationGuestGone(t *testing.T) {
	logDuration(t)
	for _, tc := range []struct {
		name, die, why string
		cmdline        []string
	}{
		{"panic", "echo c >/proc/sysrq-trigger", "the agent stopped answering", []string{"panic=0"}},
		{"poweroff", "poweroff -f", "qemu exited", nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			// Only markers, in a small buffer whose wake-up watermark
			// (10%) is a fraction of a second of them.
			g := vmtest.Boot(t, vmtest.Options{CPUs: 1, Events: "none", BufferKB: 128, Cmdline: tc.cmdline})
			out := filepath.Join(t.TempDir(), "capture")
			c := startCollect(t, g, out, "--start", "--timeout", "30s")
			const n = 500
			command(t, g, markersThenDie(n, tc.die))
			m, err := g.WaitFor(fmt.Sprintf(`VTRACE-MARK n=%d`, n), 3*time.Minute)
			if err != nil {
				t.Fatal(err)
			}
			last, _ := strconv.Atoi(strings.TrimPrefix(m[0], "VTRACE-MARK n="))
			c.wait(2 * time.Minute)
			t.Logf("vtrace host collect:\n%s%s", c.stdout.String(), c.stderr.String())
			var ee *exec.ExitError
			if !errors.As(c.err, &ee) || ee.ExitCode() != 1 {
				t.Errorf("collect: %v, want exit status 1", c.err)
			}
			for _, want := range []string{"WARNING: the guest went away at ", tc.why, "wrote " + filepath.Join(out, "trace.dat")} {
				if !strings.Contains(c.stdout.String(), want) {
					t.Errorf("the summary does not say %q", want)
				}
			}
			scanCaptures(t, g.CPUs, out) // whole pages that parse
			got := markersIn(t, filepath.Join(out, "trace.dat"))
			missing := 0
			for i := 1; i <= last-markerMargin; i++ {
				if !got[i] {
					if missing++; missing <= 5 {
						t.Errorf("marker %d (of %d the console counted) is not in trace.dat", i, last)
					}
				}
			}
			t.Logf("%d markers in trace.dat; the guest wrote %d; every one up to %d required (%d missing)", len(got), last, last-markerMargin, missing)
		})
	}
}
