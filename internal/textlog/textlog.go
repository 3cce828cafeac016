// Package textlog is a leveled logger that writes the lines of log/slog's
// TextHandler (time=RFC3339-with-ms level=WARN msg="..." key=value ...)
// with fmt alone. The guest agent logs through it: log/slog, with the
// encoding/json it imports, adds about 400 KB to a static binary, and the
// guest binary has 3 MB in all (docs/guest.md). A *slog.Logger has the same
// methods it has.
package textlog

import (
	"fmt"
	"io"
	"strconv"
	"sync"
	"time"
	"unicode"
	"unicode/utf8"
)

// Level orders messages; its values are log/slog's.
type Level int

// The levels, as log/slog numbers them.
const (
	LevelDebug Level = -4
	LevelInfo  Level = 0
	LevelWarn  Level = 4
	LevelError Level = 8
)

func (l Level) String() string {
	switch {
	case l >= LevelError:
		return "ERROR"
	case l >= LevelWarn:
		return "WARN"
	case l >= LevelInfo:
		return "INFO"
	}
	return "DEBUG"
}

// Logger writes one line per message at or above its level. Its methods
// are safe for concurrent use; those of a nil *Logger write nothing.
type Logger struct {
	out   *output
	min   Level
	attrs []any // keys and values every line of this Logger carries
}

// output is the writer Loggers made by With share, and its lock.
type output struct {
	mu  sync.Mutex
	w   io.Writer
	buf []byte
	now func() time.Time // time.Now, or a fixed clock in tests
}

// New returns a Logger writing the messages at min and above to w.
func New(w io.Writer, min Level) *Logger {
	return &Logger{out: &output{w: w, now: time.Now}, min: min}
}

// With returns a Logger that adds args (keys and values) to every line,
// after the message, as log/slog's Logger.With does.
func (l *Logger) With(args ...any) *Logger {
	if l == nil {
		return nil
	}
	return &Logger{out: l.out, min: l.min, attrs: append(l.attrs[:len(l.attrs):len(l.attrs)], args...)}
}

// Debug logs msg with args, alternating keys and values as log/slog takes them.
func (l *Logger) Debug(msg string, args ...any) { l.log(LevelDebug, msg, args) }

// Info logs at LevelInfo.
func (l *Logger) Info(msg string, args ...any) { l.log(LevelInfo, msg, args) }

// Warn logs at LevelWarn.
func (l *Logger) Warn(msg string, args ...any) { l.log(LevelWarn, msg, args) }

// Error logs at LevelError.
func (l *Logger) Error(msg string, args ...any) { l.log(LevelError, msg, args) }

func (l *Logger) log(level Level, msg string, args []any) {
	if l == nil || level < l.min {
		return
	}
	o := l.out
	o.mu.Lock()
	defer o.mu.Unlock()
	b := o.buf[:0]
	b = append(b, "time="...)
	b = o.now().AppendFormat(b, "2006-01-02T15:04:05.000Z07:00")
	b = append(b, " level="...)
	b = append(b, level.String()...)
	b = append(b, " msg="...)
	b = appendValue(b, msg)
	b = appendArgs(b, l.attrs)
	b = appendArgs(b, args)
	b = append(b, '\n')
	o.w.Write(b) // a log line that cannot be written has nowhere else to go
	o.buf = b
}

// appendArgs appends keys and values as " key=value", a value without a
// key as log/slog names it.
func appendArgs(b []byte, args []any) []byte {
	for len(args) > 0 {
		key, ok := args[0].(string)
		if !ok || len(args) == 1 {
			// log/slog's name for a value without a key.
			b = append(b, " !BADKEY="...)
			b = appendValue(b, text(args[0]))
			args = args[1:]
			continue
		}
		b = append(b, ' ')
		b = appendValue(b, key)
		b = append(b, '=')
		b = appendValue(b, text(args[1]))
		args = args[2:]
	}
	return b
}

// text is v as log/slog's TextHandler prints it.
func text(v any) string {
	switch v := v.(type) {
	case string:
		return v
	case error:
		if v == nil {
			return "<nil>"
		}
		return v.Error()
	case fmt.Stringer:
		return v.String()
	}
	return fmt.Sprint(v)
}

// appendValue appends s, quoted the way log/slog's TextHandler quotes:
// when it is empty or holds a space, '=', '"' or a rune that does not print.
func appendValue(b []byte, s string) []byte {
	if needsQuoting(s) {
		return strconv.AppendQuote(b, s)
	}
	return append(b, s...)
}

func needsQuoting(s string) bool {
	if s == "" {
		return true
	}
	for _, r := range s {
		if r == utf8.RuneError || r == '=' || r == '"' || unicode.IsSpace(r) || !unicode.IsPrint(r) {
			return true
		}
	}
	return false
}
