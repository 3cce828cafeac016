package vmtest

import (
	"bufio"
	"fmt"
	"os"
	"regexp"
	"strconv"
	"strings"
	"time"
)

// The guest's test port: one command line in, its output and a
// "VTRACE-END n=N rc=RC" line back; workloads report their end on the
// console.

// Command sends one command line to the guest's test port and returns its
// reply, failing when the command fails in the guest (its exit status is not
// 0) or no answer comes within Options.CommandTimeout.
func (g *Guest) Command(args ...string) (string, error) {
	return g.CommandWithin(g.opts.CommandTimeout, args...)
}

// CommandWithin is Command with its own bound.
func (g *Guest) CommandWithin(timeout time.Duration, args ...string) (string, error) {
	g.mu.Lock()
	defer g.mu.Unlock()
	line := strings.Join(args, " ")
	if g.cmdIn == nil {
		return "", fmt.Errorf("send guest command %q: the guest was stopped", line)
	}
	if strings.ContainsAny(line, "\n\r") {
		return "", fmt.Errorf("send guest command %q: a command is one line", line)
	}
	if _, err := g.cmdIn.Write([]byte(line + "\n")); err != nil {
		return "", fmt.Errorf("send guest command %q: %w", line, err)
	}
	g.ncmd++
	m, start, end, err := g.replies.wait(fmt.Sprintf(`^VTRACE-END n=%d rc=(\d+)$`, g.ncmd), g.rcursor, timeout, g.exited)
	if err != nil {
		return "", fmt.Errorf("guest command %q: %w", line, err)
	}
	// The reply is what came after the previous command's end line (a
	// command given up on may still have answered late).
	reply := g.replies.String()[g.rcursor:start]
	g.rcursor = end
	if i := strings.LastIndex(reply, "VTRACE-END n="); i >= 0 {
		reply = reply[i:]
		reply = reply[strings.IndexByte(reply, '\n')+1:]
	}
	if m[1] != "0" {
		return reply, fmt.Errorf("guest command %q: exit status %s: %s", line, m[1], strings.TrimSpace(reply))
	}
	return reply, nil
}

// StartWorkload starts workload name (spawn, busy, marker, idle) for seconds
// in the guest and returns its id; arg is the workload's optional argument.
func (g *Guest) StartWorkload(name string, seconds int, arg string) (int, error) {
	out, err := g.Command("workload", name, strconv.Itoa(seconds), arg)
	if err != nil {
		return 0, err
	}
	m := regexp.MustCompile(`id=(\d+)`).FindStringSubmatch(out)
	if m == nil {
		return 0, fmt.Errorf("start workload %s: no id in %q", name, out)
	}
	return strconv.Atoi(m[1])
}

// WaitWorkload waits for workload id's VTRACE-WORKLOAD-DONE line.
func (g *Guest) WaitWorkload(id int, timeout time.Duration) error {
	m, _, _, err := g.con.wait(fmt.Sprintf(`^VTRACE-WORKLOAD-DONE id=%d name=\S+ rc=(\d+)`, id), g.bootStart, timeout, g.exited)
	if err != nil {
		return fmt.Errorf("wait for workload %d: %w", id, err)
	}
	if m[1] != "0" {
		return fmt.Errorf("workload %d: %s", id, m[0])
	}
	return nil
}

// RunWorkload runs workload name for seconds and waits for its end.
func (g *Guest) RunWorkload(name string, seconds int) error {
	id, err := g.StartWorkload(name, seconds, "")
	if err != nil {
		return err
	}
	return g.WaitWorkload(id, time.Duration(seconds)*time.Second+g.opts.CommandTimeout)
}

// readReplies copies the test port's lines into t until f is closed.
func (g *Guest) readReplies(f *os.File, t *text) {
	r := bufio.NewReader(f)
	for {
		line, err := r.ReadBytes('\n')
		t.write(line)
		if err != nil {
			return
		}
	}
}
