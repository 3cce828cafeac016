package testutil

import (
	"path/filepath"
	"testing"
)

// AgentOptions say how StartAgent runs `vtrace guest agent`.
type AgentOptions struct {
	Tracefs  string   // --tracefs: the tracefs or ftrace instance it streams
	Dir      string   // --ports-dir: a FIFO directory, whose NAME.in/NAME.out pairs are its ports
	Instance string   // --instance: where it records when the host gives settings ("": its default)
	Args     []string // more flags (--verbose, --pipe-size 64K, ...)
}

// Agent is the built `vtrace guest agent` running on this machine in
// loopback mode: it reads its orders from DIR/agent-ctl-path.in and writes
// CPU N's pages into DIR/trace-path-cpuN.out, as it would to its ports in a
// guest.
type Agent struct {
	*Process
	// Own is the instance it records in when the host gives settings:
	// Instance's directory beside Tracefs ("" without Instance).
	Own string
}

// StartAgent starts the agent. When the test ends it is stopped (Stop):
// it must exit cleanly, unless the test stopped it before.
func StartAgent(t testing.TB, opts AgentOptions) *Agent {
	t.Helper()
	args := []string{"guest", "agent", "--tracefs", opts.Tracefs, "--ports-dir", opts.Dir}
	a := &Agent{}
	if opts.Instance != "" {
		args = append(args, "--instance", opts.Instance)
		a.Own = filepath.Join(filepath.Dir(opts.Tracefs), opts.Instance)
	}
	a.Process = StartVtrace(t, append(args, opts.Args...)...)
	t.Cleanup(func() { a.Stop(t) })
	return a
}
