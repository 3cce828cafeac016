package testutil

import (
	"bytes"
	"os"
	"os/exec"
	"sync"
	"syscall"
	"testing"
	"time"
)

// Process is the built vtrace running in the background: a collector, an
// agent, any command a test starts and stops.
type Process struct {
	Cmd    *exec.Cmd
	stdout lockedBuffer
	stderr lockedBuffer
	done   chan struct{}
	err    error // Cmd.Wait's, once done is closed
}

// StartVtrace starts the built vtrace with args. A process still running
// when the test ends gets SIGTERM, and SIGKILL a minute later.
func StartVtrace(t testing.TB, args ...string) *Process {
	t.Helper()
	p := &Process{Cmd: exec.Command(BuildVtrace(t), args...), done: make(chan struct{})}
	p.Cmd.Stdout, p.Cmd.Stderr = &p.stdout, &p.stderr
	if err := p.Cmd.Start(); err != nil {
		t.Fatalf("start vtrace %q: %v", args, err)
	}
	go func() {
		p.err = p.Cmd.Wait()
		close(p.done)
	}()
	t.Cleanup(func() { p.end(syscall.SIGTERM) })
	return p
}

// Signal sends sig to the process, if it runs.
func (p *Process) Signal(sig os.Signal) {
	select {
	case <-p.done:
	default:
		p.Cmd.Process.Signal(sig)
	}
}

// Wait waits for the process to exit and returns Cmd.Wait's error.
func (p *Process) Wait() error {
	<-p.done
	return p.err
}

// Exited is closed once the process has exited.
func (p *Process) Exited() <-chan struct{} { return p.done }

// Stop sends SIGTERM and waits for the process to exit; an exit that is
// not clean fails the test, with what it wrote. Stopping a process that
// exited does nothing.
func (p *Process) Stop(t testing.TB) {
	t.Helper()
	select {
	case <-p.done:
		return
	default:
	}
	if !p.end(syscall.SIGTERM) {
		t.Errorf("vtrace %q did not exit within a minute of SIGTERM; killed it\n%s", p.Cmd.Args[1:], p.Output())
	} else if p.err != nil {
		t.Errorf("vtrace %q after SIGTERM: %v\n%s", p.Cmd.Args[1:], p.err, p.Output())
	}
}

// end sends sig and waits for the exit; after a minute (a guard against
// a hang, not a measure) it kills the process and reports false.
func (p *Process) end(sig os.Signal) bool {
	p.Signal(sig)
	select {
	case <-p.done:
		return true
	case <-time.After(time.Minute):
		p.Cmd.Process.Kill()
		<-p.done
		return false
	}
}

// Stdout and Stderr are what the process wrote on each so far; Output is
// both, stdout first.
func (p *Process) Stdout() string { return p.stdout.String() }
func (p *Process) Stderr() string { return p.stderr.String() }
func (p *Process) Output() string { return p.stdout.String() + p.stderr.String() }

// RunVtrace runs the built vtrace with args to its end and returns what it
// wrote on stdout and on stderr, and Cmd.Run's error.
func RunVtrace(t testing.TB, args ...string) (stdout, stderr string, err error) {
	t.Helper()
	cmd := exec.Command(BuildVtrace(t), args...)
	var o, e bytes.Buffer
	cmd.Stdout, cmd.Stderr = &o, &e
	err = cmd.Run()
	return o.String(), e.String(), err
}

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
