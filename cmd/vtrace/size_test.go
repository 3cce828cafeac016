package main

import (
	"errors"
	"math"
	"strings"
	"testing"

	"github.com/spf13/cobra"

	"github.com/vtrace/vtrace/host/session"
	"github.com/vtrace/vtrace/proto/wire"
)

func TestParseSize(t *testing.T) {
	for in, want := range map[string]uint64{
		"1": 1, "4096": 4096, "65536": 65536, "64K": 64 << 10, "64k": 64 << 10, "1M": 1 << 20, "1m": 1 << 20,
		"2MiB": 2 << 20, "4KB": 4 << 10, "4kb": 4 << 10, "1G": 1 << 30, "64g": 64 << 30, "3GiB": 3 << 30, " 8M ": 8 << 20,
		"1023B": 1023, "17179869183G": 17179869183 << 30,
	} {
		if got, err := parseSize(in); err != nil || got != want {
			t.Errorf("parseSize(%q) = %d, %v; want %d", in, got, err, want)
		}
	}
	for _, bad := range []string{"", "K", "B", "iB", "1iB", "0", "0K", "-1", "+1", "1.5M", "1T", "1KK", "0x10", "1 M", "1_000",
		"17179869184G", "18446744073709551616"} {
		if got, err := parseSize(bad); err == nil {
			t.Errorf("parseSize(%q) = %d, want an error", bad, got)
		}
	}
}

func FuzzParseSize(f *testing.F) {
	for _, s := range []string{"4096", "64K", "2MiB", "1G", "0", "1iB", "17179869184G"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		n, err := parseSize(s)
		if err != nil {
			return
		}
		if n == 0 {
			t.Fatalf("parseSize(%q) = 0 without an error", s)
		}
		if again, err := parseSize(formatSize(n)); err != nil || again != n {
			t.Fatalf("round trip of %d via %q: %d, %v", n, formatSize(n), again, err)
		}
	})
}

func TestFormatSize(t *testing.T) {
	for n, want := range map[uint64]string{0: "0", 1: "1", 1000: "1000", 1 << 10: "1K", 1536: "1536", 1 << 20: "1M", 3 << 30: "3G", 1<<40 + 1<<20: "1048577M"} {
		if got := formatSize(n); got != want {
			t.Errorf("formatSize(%d) = %q, want %q", n, got, want)
		}
	}
}

func TestPipeSize(t *testing.T) {
	for _, tc := range []struct {
		n         uint64
		max, page int
		want      int // 0: an error
	}{
		{65536, 1 << 20, 4096, 65536},
		{65537, 1 << 20, 4096, 69632},
		{1 << 20, 1 << 20, 4096, 1 << 20},
		{1<<20 - 1, 1 << 20, 4096, 1 << 20},
		{65537, 1 << 20, 65536, 131072}, // 64 KiB pages (arm64, ppc64)
		{32 << 10, 1 << 20, 4096, 0},
		{2 << 20, 1 << 20, 4096, 0},
		{1<<20 + 1, 1 << 20, 4096, 0},
		{math.MaxUint64, 1 << 20, 4096, 0},
	} {
		got, err := pipeSize(tc.n, tc.max, tc.page)
		if tc.want == 0 && err == nil || tc.want != 0 && (err != nil || got != tc.want) {
			t.Errorf("pipeSize(%d, max %d, page %d) = %d, %v; want %d (0: an error)", tc.n, tc.max, tc.page, got, err, tc.want)
		}
	}
}

// TestBufferKiB: --buffer-size is in bytes, buffer_size_kb and the wire in
// KiB: rounded up, never down.
func TestBufferKiB(t *testing.T) {
	for n, want := range map[uint64]uint64{0: 0, 1: 1, 1023: 1, 1024: 1, 1025: 2, 4096: 4, 4 << 20: 4096, 64 << 30: 64 << 20,
		math.MaxUint64: 1 << 54} {
		if got := bufferKiB(n); got != want {
			t.Errorf("bufferKiB(%d) = %d, want %d", n, got, want)
		}
	}
}

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
		"--filter", "irq=irq == 1", "--buffer-size", "4M", "--clock", "global", "--instance", "mine")
	if err != nil {
		t.Fatal(err)
	}
	want := wire.Settings{Events: []string{"sched:sched_switch", "irq", "timer"},
		Filters:   []wire.Filter{{Event: "sched:sched_switch", Expr: "prev_pid != 0"}, {Event: "irq", Expr: "irq == 1"}},
		BufferKiB: 4096, Clock: "global", Instance: "mine"}
	if session.Describe(got) != session.Describe(want) {
		t.Errorf("settings:\n got %s\nwant %s", session.Describe(got), session.Describe(want))
	}
	for size, kib := range map[string]uint64{"4096": 4, "1000": 1, "512K": 512, "1G": 1 << 20} {
		if got, err := parse("--buffer-size", size); err != nil || got.BufferKiB != kib {
			t.Errorf("--buffer-size %s: %d KiB, %v; want %d KiB", size, got.BufferKiB, err, kib)
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
