package main

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/vtrace/vtrace/host/collect"
	"github.com/vtrace/vtrace/host/fifo"
	"github.com/vtrace/vtrace/host/orders"
	"github.com/vtrace/vtrace/host/session"
	"github.com/vtrace/vtrace/internal/cli"
	"github.com/vtrace/vtrace/proto/wire"
)

// target is the FIFO directory a host command works on: a domain's
// (under fifo.DefaultBase) or one given with --dir.
type target struct {
	domain string
	dir    string
}

func (t *target) addFlags(cmd *cobra.Command) {
	cmd.Flags().StringVar(&t.dir, "dir", "", "FIFO directory (instead of a domain's "+fifo.DefaultBase+"/<domain>)")
}

func (t *target) fill(args []string) {
	if len(args) == 1 {
		t.domain = args[0]
	}
}

// resolve returns the FIFO directory, insisting on exactly one of a domain
// and --dir.
func (t target) resolve() (string, error) {
	switch {
	case t.domain != "" && t.dir != "":
		return "", usageError{errors.New("give a domain or --dir, not both")}
	case t.dir != "":
		return t.dir, nil
	case t.domain == "":
		return "", usageError{errors.New("give a domain or --dir DIR")}
	}
	dir, err := fifo.DomainDir(fifo.DefaultBase, t.domain)
	if err != nil {
		return "", usageError{err}
	}
	return dir, nil
}

// agentFlags are how a host command reaches the agent.
type agentFlags struct {
	timeout   time.Duration
	handshake time.Duration
}

func (a *agentFlags) addFlags(cmd *cobra.Command, timeoutHelp string) {
	cmd.Flags().DurationVar(&a.timeout, "timeout", orders.DefaultTimeout, timeoutHelp)
	cmd.Flags().DurationVar(&a.handshake, "handshake-timeout", session.DefaultHandshakeTimeout,
		"how long to wait for the agent's answer to the handshake before sending the line protocol's bare orders (the kernel's C agent)")
}

func (a agentFlags) check() error {
	if a.timeout <= 0 || a.handshake <= 0 {
		return usageError{fmt.Errorf("check --timeout %v and --handshake-timeout %v: must be positive", a.timeout, a.handshake)}
	}
	return nil
}

// openSession opens the control channel of t's FIFO directory, which it
// returns too, after checking the command line (usage errors).
func openSession(ctx context.Context, t target, a agentFlags) (string, *session.Session, error) {
	dir, err := t.resolve()
	if err != nil {
		return "", nil, err
	}
	if err := a.check(); err != nil {
		return "", nil, err
	}
	sess, err := session.Open(ctx, dir, session.Options{OpenTimeout: a.timeout, HandshakeTimeout: a.handshake,
		ReplyTimeout: a.timeout, HostVersion: version})
	return dir, sess, err
}

// settingsFlags are the recording's settings on the command line: what the
// guest agent records, sent in the start order.
type settingsFlags struct {
	events     []string // each "system" or "system:event", or a comma-separated list of them
	filters    filterValue
	bufferSize cli.Size // bytes per CPU; 0: not given
	subbufSize cli.SubbufSize
	clock      string
	instance   string
	latency    time.Duration // 0: the agent's own
}

func (f *settingsFlags) addFlags(cmd *cobra.Command) {
	fl := cmd.Flags()
	fl.StringSliceVar(&f.events, "events", nil, "events to record: system or system:event, comma separated or repeated (as trace-cmd -e)")
	fl.Var(&f.filters, "filter", "a filter expression on an event or a system, written to its filter file (repeatable)")
	fl.Var(&f.bufferSize, "buffer-size", "ring buffer per CPU in bytes, with an optional K, M or G suffix (4M); rounded up to a whole KiB")
	fl.Var(&f.subbufSize, "subbuf-size", "ring-buffer sub-buffer (page) size, a power of two from 4K to 1M (guest kernel 6.8 and later; the largest event is a little under it)")
	fl.StringVar(&f.clock, "clock", "", "trace clock (local, global, mono, x86-tsc...)")
	fl.StringVar(&f.instance, "instance", "", "ftrace instance the agent records in (default: its own)")
	fl.DurationVar(&f.latency, "latency", 0, "longest an event recorded waits in the guest before the agent sends it (default: the agent's --latency, 1s)")
}

// settings turns the flags into the start order's settings, checked as the
// encoder checks them (names, bounds): an error is a usage error.
func (f settingsFlags) settings() (wire.Settings, error) {
	var s wire.Settings
	for _, list := range f.events {
		for _, ev := range strings.Split(list, ",") {
			if ev = strings.TrimSpace(ev); ev != "" {
				s.Events = append(s.Events, ev)
			}
		}
	}
	s.Filters = f.filters
	s.BufferKiB = cli.BufferKiB(uint64(f.bufferSize))
	s.SubbufKiB = f.subbufSize.KiB()
	s.Clock, s.Instance = f.clock, f.instance
	if f.latency < 0 {
		return s, usageError{fmt.Errorf("check --latency %v: must not be negative", f.latency)}
	}
	s.LatencyMS = uint32(min((f.latency+time.Millisecond-1)/time.Millisecond, wire.MaxLatencyMS+1)) // a bad one is refused below
	if err := session.CheckSettings(s); err != nil {
		return s, usageError{err}
	}
	return s, nil
}

// filterValue is the repeatable --filter EVENT=EXPR.
type filterValue []wire.Filter

func (v *filterValue) Set(s string) error {
	ev, expr, ok := strings.Cut(s, "=")
	ev, expr = strings.TrimSpace(ev), strings.TrimSpace(expr)
	if !ok || ev == "" || expr == "" {
		return errors.New("want EVENT=EXPR, as in sched:sched_switch='prev_pid != 0'")
	}
	*v = append(*v, wire.Filter{Event: ev, Expr: expr})
	return nil
}

func (v *filterValue) String() string {
	var parts []string
	for _, f := range *v {
		parts = append(parts, f.Event+"="+f.Expr)
	}
	return strings.Join(parts, " ")
}

func (v *filterValue) Type() string { return "EVENT=EXPR" }

// flagAdvice phrases the host libraries' sentinel errors in the command
// line's terms: the flag to drop or add, the command to run first. dir is
// the FIFO directory the command works on.
func flagAdvice(err error, dir string) error {
	switch {
	case errors.Is(err, session.ErrNoSettings):
		return fmt.Errorf("%w: start a vtrace agent in the guest, or drop --events, --filter, --buffer-size, --subbuf-size, --clock and --instance", err)
	case errors.Is(err, session.ErrRecording):
		return fmt.Errorf("%w; stop it first with `vtrace host stop --dir %s`", err, dir)
	case errors.Is(err, collect.ErrExists):
		return fmt.Errorf("%w: use --force to replace it, or another directory", err)
	}
	return err
}
