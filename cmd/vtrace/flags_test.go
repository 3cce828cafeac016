package main

import (
	"errors"
	"strings"
	"testing"

	"github.com/spf13/cobra"

	"github.com/vtrace/vtrace/host/session"
	"github.com/vtrace/vtrace/proto/wire"
)

func TestSettingsFlags(t *testing.T) {
	parse := func(args ...string) (wire.Settings, error) {
		t.Helper()
		var f settingsFlags
		cmd := &cobra.Command{Use: "test"}
		f.addFlags(cmd)
		if err := cmd.ParseFlags(args); err != nil {
			return wire.Settings{}, err
		}
		return f.settings()
	}
	got, err := parse("--events", "sched:sched_switch, irq", "--events", "timer", "--filter", "sched:sched_switch = prev_pid != 0",
		"--filter", "irq=irq == 1", "--buffer-size", "4M", "--subbuf-size", "16K", "--clock", "global", "--instance", "mine")
	if err != nil {
		t.Fatal(err)
	}
	want := wire.Settings{Events: []string{"sched:sched_switch", "irq", "timer"},
		Filters:   []wire.Filter{{Event: "sched:sched_switch", Expr: "prev_pid != 0"}, {Event: "irq", Expr: "irq == 1"}},
		BufferKiB: 4096, SubbufKiB: 16, Clock: "global", Instance: "mine"}
	if session.Describe(got) != session.Describe(want) {
		t.Errorf("settings:\n got %s\nwant %s", session.Describe(got), session.Describe(want))
	}
	for size, kib := range map[string]uint64{"4096": 4, "1000": 1, "512K": 512, "1G": 1 << 20} {
		if got, err := parse("--buffer-size", size); err != nil || got.BufferKiB != kib {
			t.Errorf("--buffer-size %s: %d KiB, %v; want %d KiB", size, got.BufferKiB, err, kib)
		}
	}
	for size, kib := range map[string]uint32{"4K": 4, "8192": 8, "64KiB": 64, "1M": 1024} {
		if got, err := parse("--subbuf-size", size); err != nil || got.SubbufKiB != kib {
			t.Errorf("--subbuf-size %s: %d KiB, %v; want %d KiB", size, got.SubbufKiB, err, kib)
		}
	}
	if got, err := parse(); err != nil || !got.IsZero() {
		t.Errorf("no flags: %+v, %v; want no settings", got, err)
	}
	for latency, ms := range map[string]uint32{"1s": 1000, "250ms": 250, "1500us": 2, "1ns": 1, "1h": 3_600_000} { // rounded up
		if got, err := parse("--latency", latency); err != nil || got.LatencyMS != ms {
			t.Errorf("--latency %s: %d ms, %v; want %d ms", latency, got.LatencyMS, err, ms)
		}
	}
	for _, tc := range []struct {
		args []string
		bad  string // in the error
	}{
		{[]string{"--buffer-size", "0"}, "--buffer-size"},
		{[]string{"--buffer-size", "12X"}, "--buffer-size"},
		{[]string{"--subbuf-size", "12K"}, "power of two"},
		{[]string{"--subbuf-size", "2K"}, "power of two"},
		{[]string{"--subbuf-size", "2M"}, "--subbuf-size"},
		{[]string{"--filter", "nofilter"}, "--filter"},
		{[]string{"--filter", "sched="}, "--filter"},
		{[]string{"--events", "../etc:passwd"}, "event"},
		{[]string{"--clock", "a b"}, "clock"},
		{[]string{"--instance", ".."}, "instance"},
		{[]string{"--latency", "-1s"}, "--latency"},
		{[]string{"--latency", "61m"}, "latency"},
	} {
		_, err := parse(tc.args...)
		if err == nil || !strings.Contains(err.Error(), tc.bad) {
			t.Errorf("%q: %v, want an error naming %q", tc.args, err, tc.bad)
		}
	}
	_, err = parse("--events", "../etc:passwd")
	var u usageError
	if !errors.As(err, &u) || !errors.Is(err, session.ErrSettings) {
		t.Errorf("a bad event: %v, want a usage error wrapping session.ErrSettings", err)
	}
}
