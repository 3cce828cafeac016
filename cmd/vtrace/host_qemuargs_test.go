package main

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/vtrace/vtrace/internal/testutil"
)

// qtreePorts reads qemu's `info qtree`: for each virtserialport of ours,
// "BUS:NR" by name.
func qtreePorts(tree string) map[string]string {
	bus := regexp.MustCompile(`^\s*bus: (\S+)$`)
	dev := regexp.MustCompile(`^\s*dev: virtserialport, id "vtrace\d+-port"$`)
	nr := regexp.MustCompile(`^\s*nr = (\d+) `)
	name := regexp.MustCompile(`^\s*name = "([^"]+)"$`)
	got := map[string]string{}
	var curBus, curNr string
	in := false
	for _, line := range strings.Split(tree, "\n") {
		line = strings.TrimRight(line, "\r")
		switch {
		case bus.MatchString(line):
			curBus, in = bus.FindStringSubmatch(line)[1], false
		case dev.MatchString(line):
			in, curNr = true, ""
		case in && nr.MatchString(line):
			curNr = nr.FindStringSubmatch(line)[1]
		case in && name.MatchString(line):
			got[name.FindStringSubmatch(line)[1]] = curBus + ":" + curNr
			in = false
		}
	}
	return got
}

// TestIntegrationQemuAcceptsQemuArgs: the options `host qemu-args --create`
// prints for many vCPUs are ones qemu itself accepts: 64 vCPUs on q35
// (one controller with more ports than its default 31), and 600 ports'
// worth (two controllers). qemu starts paused (-S), shows its device tree
// on its monitor and quits: every channel is a virtserialport with its
// name, on the port the options give.
func TestIntegrationQemuAcceptsQemuArgs(t *testing.T) {
	qemu := testutil.NeedProgram(t, "qemu-system-x86_64", "qemu-system-x86")
	for _, c := range []struct{ cpus, smp int }{{64, 64}, {29, 29}, {600, 1}} {
		dir := filepath.Join(t.TempDir(), "fifos")
		var out, errOut bytes.Buffer
		if err := runHostQemuArgs(context.Background(), &hostQemuArgsOptions{cpus: c.cpus, dir: dir, create: true, out: &out, errOut: &errOut}); err != nil {
			t.Fatalf("%d vCPUs: qemu-args: %v\n%s", c.cpus, err, errOut.String())
		}
		// The shell takes the options as a user pastes them.
		script := filepath.Join(t.TempDir(), "qemu.sh")
		text := fmt.Sprintf("printf 'info qtree\\nquit\\n' | exec %s -nodefaults -display none -machine q35 -accel tcg,tb-size=32 -smp %d -m 128 -S -monitor stdio \\\n%s",
			qemu, c.smp, out.String())
		if err := os.WriteFile(script, []byte(text), 0o644); err != nil {
			t.Fatal(err)
		}
		b, err := exec.Command("sh", script).CombinedOutput()
		if err != nil {
			t.Fatalf("%d vCPUs: qemu refused the options: %v\n%.3000s", c.cpus, err, b)
		}
		got := qtreePorts(string(b))
		for i := -1; i < c.cpus; i++ {
			name := "agent-ctl-path"
			if i >= 0 {
				name = fmt.Sprintf("trace-path-cpu%d", i)
			}
			nr := fmt.Sprintf("vtrace-serial%d.0:%d", (i+1)/510, (i+1)%510+1)
			if got[name] != nr {
				t.Errorf("%d vCPUs: qemu has %s on port %q, want %s", c.cpus, name, got[name], nr)
			}
		}
		if len(got) != c.cpus+1 {
			t.Errorf("%d vCPUs: qemu has %d ports of ours, want %d", c.cpus, len(got), c.cpus+1)
		}
	}
}
