package textlog

import (
	"bytes"
	"errors"
	"log/slog"
	"testing"
	"time"
)

// Every message prints as log/slog's TextHandler prints it, so that what
// reads the agent's log (people, tests, journald) sees one format from
// both binaries.
func TestSameLinesAsSlog(t *testing.T) {
	at := time.Date(2026, 12, 5, 3, 4, 5, 678_000_000, time.UTC)
	cases := []struct {
		msg  string
		args []any
	}{
		{"agent ready", nil},
		{"start", []any{"dir", "/sys/kernel/tracing/instances/vtrace", "cpu", 3}},
		{"start refused", []any{"err", errors.New(`open "x": no such file`)}},
		{"CPUs streamed", []any{"cpus", "0,2", "not", "1: offline"}},
		{"stopped", []any{"bytes", int64(1 << 20), "partial", true, "every", 20 * time.Millisecond}},
		{"odd", []any{"key"}},
		{"odd", []any{42, "x"}},
		{"", []any{"empty", "", "eq", "a=b", "tab", "a\tb", "nl", "a\nb", "bad", "\xff"}},
	}
	for _, level := range []Level{LevelDebug, LevelInfo, LevelWarn, LevelError} {
		for _, c := range cases {
			var ours, theirs bytes.Buffer
			l := New(&ours, LevelDebug)
			l.out.now = func() time.Time { return at }
			l.With("cpu", 1).log(level, c.msg, c.args)
			h := slog.NewTextHandler(&theirs, &slog.HandlerOptions{Level: slog.LevelDebug,
				ReplaceAttr: func(_ []string, a slog.Attr) slog.Attr {
					if a.Key == slog.TimeKey {
						a.Value = slog.TimeValue(at)
					}
					return a
				}})
			slog.New(h).With("cpu", 1).Log(t.Context(), slog.Level(level), c.msg, c.args...)
			if ours.String() != theirs.String() {
				t.Errorf("%v %q %v:\n ours   %q\n slog's %q", level, c.msg, c.args, ours.String(), theirs.String())
			}
		}
	}
}

func TestLevels(t *testing.T) {
	var b bytes.Buffer
	l := New(&b, LevelWarn)
	l.Debug("d")
	l.Info("i")
	if b.Len() != 0 {
		t.Errorf("below the level: %q", b.String())
	}
	l.Warn("w")
	l.Error("e")
	if n := bytes.Count(b.Bytes(), []byte("\n")); n != 2 {
		t.Errorf("at and above the level: %d lines: %q", n, b.String())
	}
	var none *Logger
	none.Warn("nothing") // a nil Logger writes nothing and does not panic
}
