package testutil

import (
	"bytes"
	"os/exec"
	"path/filepath"
	"sync"
	"syscall"
	"testing"
	"time"
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
	Cmd *exec.Cmd
	// Own is the instance it records in when the host gives settings:
	// Instance's directory beside Tracefs ("" without Instance).
	Own  string
	log  lockedBuffer
	done chan struct{}
	err  error // Cmd.Wait's, once done is closed
}

// StartAgent starts the agent; it is stopped (SIGTERM) and must exit
// cleanly when the test ends, unless the test stopped it before.
func StartAgent(t testing.TB, opts AgentOptions) *Agent {
	t.Helper()
	args := []string{"guest", "agent", "--tracefs", opts.Tracefs, "--ports-dir", opts.Dir}
	a := &Agent{done: make(chan struct{})}
	if opts.Instance != "" {
		args = append(args, "--instance", opts.Instance)
		a.Own = filepath.Join(filepath.Dir(opts.Tracefs), opts.Instance)
	}
	a.Cmd = exec.Command(BuildVtrace(t), append(args, opts.Args...)...)
	a.Cmd.Stdout, a.Cmd.Stderr = &a.log, &a.log
	if err := a.Cmd.Start(); err != nil {
		t.Fatalf("start the guest agent: %v", err)
	}
	go func() {
		a.err = a.Cmd.Wait()
		close(a.done)
	}()
	t.Cleanup(func() { a.Stop(t) })
	return a
}

// Stop sends SIGTERM and waits for the agent to exit; an exit that is not
// clean fails the test, with the agent's log. Stopping it again does
// nothing.
func (a *Agent) Stop(t testing.TB) {
	t.Helper()
	select {
	case <-a.done:
		return
	default:
	}
	a.Cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-a.done:
		if a.err != nil {
			t.Errorf("guest agent after SIGTERM: %v\n%s", a.err, a.Log())
		}
	case <-time.After(time.Minute): // a guard against a hang, not a measure
		a.Cmd.Process.Kill()
		<-a.done
		t.Errorf("guest agent did not exit within a minute of SIGTERM; killed it\n%s", a.Log())
	}
}

// Log is what the agent wrote on stdout and stderr so far.
func (a *Agent) Log() string { return a.log.String() }

// lockedBuffer is a bytes.Buffer that a process writes while a test reads.
type lockedBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *lockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *lockedBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}
