package session_test

import (
	"context"
	"errors"
	"fmt"
	"testing"

	"github.com/vtrace/vtrace/host/session"
	"github.com/vtrace/vtrace/internal/sys"
	"github.com/vtrace/vtrace/proto/wire"
)

// TestSessionScriptedPeerClockProbes: probes go out one at a time; the
// host's readings bracket the guest's (one machine, one clock); the marks
// come in order around each probe; a late reply to another probe is
// skipped.
func TestSessionScriptedPeerClockProbes(t *testing.T) {
	dir := fifoDir(t)
	mono, _ := sys.TraceClockByName("mono")
	const n = 5
	script(t, dir, func(p *peer) {
		p.hello()
		for i := range n {
			m, ok := p.expect().(*wire.ClockProbe)
			if !ok || m.Clock != "mono" || !m.Mark {
				p.t.Errorf("peer: want a marked probe of mono, got %#v", m)
				return
			}
			recv, _ := mono.Now()
			if i == 2 {
				p.send(&wire.ClockReply{ID: m.ID - 1, Clock: "mono", Received: 1, Sent: 2})
			}
			sent, _ := mono.Now()
			p.send(&wire.ClockReply{ID: m.ID, Clock: "mono", Received: uint64(recv), Sent: uint64(sent), Marked: true})
		}
	})
	s := open(t, dir, session.Options{HandshakeTimeout: guard, ReplyTimeout: guard})
	var marks []string
	got, err := s.ProbeClock(context.Background(), session.ProbeOptions{Clock: mono, Count: n,
		Mark: func(id uint64, what string) { marks = append(marks, fmt.Sprint(id, what)) }})
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != n {
		t.Fatalf("%d samples, want %d", len(got), n)
	}
	for i, c := range got {
		if !(c.HostSent <= c.GuestReceived && c.GuestReceived <= c.GuestSent && c.GuestSent <= c.HostReceived) {
			t.Errorf("sample %d out of order: %+v", i, c)
		}
		if c.Delay() < 0 || c.Offset() > c.Delay() || -c.Offset() > c.Delay() {
			t.Errorf("sample %d: delay %d, offset %d on one clock", i, c.Delay(), c.Offset())
		}
		if want := []string{fmt.Sprint(c.ID, "send"), fmt.Sprint(c.ID, "answer")}; marks[2*i] != want[0] || marks[2*i+1] != want[1] {
			t.Errorf("marks %v around probe %d, want %v", marks[2*i:2*i+2], i, want)
		}
	}
}

// TestSessionScriptedPeerClockRefused: an agent that does not know the
// probe (an older agent answers Error unsupported, id 0) gives
// ErrNoClockProbes; a clock the agent cannot read gives ErrAgent with its
// reason.
func TestSessionScriptedPeerClockRefused(t *testing.T) {
	for _, tc := range []struct {
		name  string
		reply func(id uint64) wire.Message
		want  error
	}{
		{"old agent", func(uint64) wire.Message {
			return &wire.Error{Code: wire.CodeUnsupported, Message: "decode frame: type-14: unknown message type"}
		}, session.ErrNoClockProbes},
		{"unreadable clock", func(id uint64) wire.Message {
			return &wire.ClockReply{ID: id, Clock: "mono", Error: "trace clock mono: no"}
		}, session.ErrAgent},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := fifoDir(t)
			script(t, dir, func(p *peer) {
				p.hello()
				if m, ok := p.expect().(*wire.ClockProbe); ok {
					p.send(tc.reply(m.ID))
				}
			})
			s := open(t, dir, session.Options{HandshakeTimeout: guard, ReplyTimeout: guard})
			mono, _ := sys.TraceClockByName("mono")
			_, err := s.ProbeClock(context.Background(), session.ProbeOptions{Clock: mono, Count: 3})
			if !errors.Is(err, tc.want) {
				t.Errorf("ProbeClock: %v, want %v", err, tc.want)
			}
		})
	}
}
