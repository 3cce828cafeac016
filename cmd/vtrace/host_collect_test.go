package main

import (
	"errors"
	"fmt"
	"path/filepath"
	"strings"
	"testing"

	"github.com/vtrace/vtrace/host/collect"
	"github.com/vtrace/vtrace/host/session"
)

func TestTargetResolve(t *testing.T) {
	for _, tc := range []struct {
		name   string
		target target
		want   string
		usage  bool
	}{
		{name: "domain", target: target{domain: "vm1"}, want: filepath.Join("/var/lib/vtrace", "vm1")},
		{name: "dir", target: target{dir: "/tmp/vt"}, want: "/tmp/vt"},
		{name: "both", target: target{domain: "vm1", dir: "/tmp/vt"}, usage: true},
		{name: "neither", usage: true},
		{name: "hostile", target: target{domain: "../etc"}, usage: true},
		{name: "slash", target: target{domain: "a/b"}, usage: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := tc.target.resolve()
			var u usageError
			if tc.usage != errors.As(err, &u) {
				t.Fatalf("resolve: got %q, %v; want usage error %v", got, err, tc.usage)
			}
			if !tc.usage && got != tc.want {
				t.Errorf("resolve: got %q, want %q", got, tc.want)
			}
		})
	}
}

// TestFlagAdvice: the host libraries' sentinel errors come out naming the
// flags or the command that deal with them, still matching the sentinel.
func TestFlagAdvice(t *testing.T) {
	for _, tc := range []struct {
		err  error
		want string
	}{
		{fmt.Errorf("start recording with settings: %w on DIR within 2s, and %w", session.ErrLineProtocol, session.ErrNoSettings),
			"drop --events, --filter, --buffer-size, --subbuf-size, --clock and --instance"},
		{fmt.Errorf("start recording: %w: %w", session.ErrAgent, session.ErrRecording), "`vtrace host stop --dir /tmp/vt`"},
		{fmt.Errorf("check output directory OUT: %w (cpu0.raw)", collect.ErrExists), "use --force"},
		{session.ErrTimeout, ""},
	} {
		got := flagAdvice(tc.err, "/tmp/vt")
		if !errors.Is(got, tc.err) || !strings.Contains(got.Error(), tc.want) || tc.want == "" && got != tc.err {
			t.Errorf("flagAdvice(%v) = %v, want it wrapped with %q", tc.err, got, tc.want)
		}
	}
	if flagAdvice(nil, "/tmp/vt") != nil {
		t.Error("flagAdvice(nil) is not nil")
	}
}
