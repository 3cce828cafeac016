package main

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/spf13/cobra"
	"github.com/vtrace/vtrace/host/meta"
	"github.com/vtrace/vtrace/host/tracedat"
	"github.com/vtrace/vtrace/host/tracedat/tracedattest"
	"github.com/vtrace/vtrace/internal/testutil"
)

func TestIntegrationHostConvertAndStats(t *testing.T) {
	tc := testutil.NeedProgram(t, "trace-cmd", "trace-cmd")
	inst := testutil.Instance(t, "vtrace-cmd-convert")
	dir := t.TempDir()
	tracedattest.Record(t, inst, dir, 1)
	ctx := context.Background()
	var stdout, stderr bytes.Buffer
	opts := func(metaDir string, force bool) *hostConvertOptions {
		stdout.Reset()
		stderr.Reset()
		return &hostConvertOptions{dir: dir, meta: metaDir, force: force, stdout: &stdout, stderr: &stderr}
	}

	// Without metadata: refused, with the way out in the message.
	err := runHostConvert(ctx, opts("", false))
	if !errors.Is(err, meta.ErrNoMeta) || !strings.Contains(err.Error(), "--meta") {
		t.Fatalf("convert without metadata: %v, want ErrNoMeta mentioning --meta", err)
	}
	if _, err := os.Stat(filepath.Join(dir, "trace.dat")); err == nil {
		t.Fatal("convert without metadata wrote trace.dat")
	}

	// Stats without metadata still count, by id.
	var table bytes.Buffer
	if err := runHostStats(ctx, &hostStatsOptions{dir: dir, stdout: &table}); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(table.String(), "no metadata") {
		t.Errorf("stats without metadata:\n%s", table.String())
	}

	// --meta pointing at a live tracefs instance: converted, metadata kept.
	if err := runHostConvert(ctx, opts(inst, false)); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(stderr.String(), "saved the metadata") {
		t.Errorf("convert --meta did not save DIR/meta: %q", stderr.String())
	}
	dat := filepath.Join(dir, "trace.dat")
	rep, err := exec.Command(tc, "report", "-i", dat).CombinedOutput()
	if err != nil || !strings.Contains(string(rep), tracedattest.ProbeComm) {
		t.Errorf("trace-cmd report: %v, probe %q not named:\n%.2000s", err, tracedattest.ProbeComm, rep)
	}

	// Again, now from DIR/meta: refused without --force, done with it.
	if err := runHostConvert(ctx, opts("", false)); !errors.Is(err, os.ErrExist) || !strings.Contains(err.Error(), "--force") {
		t.Errorf("convert over an existing trace.dat: %v", err)
	}
	if err := runHostConvert(ctx, opts("", true)); err != nil {
		t.Errorf("convert --force: %v", err)
	}

	// --compress zstd alone: a compressed v7 file trace-cmd reads alike.
	o := opts("", false)
	o.compress, o.output = "zstd", filepath.Join(dir, "trace-zstd.dat")
	if err := runHostConvert(ctx, o); err != nil || !strings.Contains(stdout.String(), "(v7, zstd") {
		t.Errorf("convert --compress zstd: %v, %q", err, stdout.String())
	}
	rep7, err := exec.Command(tc, "report", "-i", o.output).CombinedOutput()
	rep6, err6 := exec.Command(tc, "report", "-i", dat).CombinedOutput()
	if err != nil || err6 != nil || !bytes.Equal(rep7, rep6) {
		t.Errorf("trace-cmd report of the zstd file (%v) differs from the v6 one's (%v):\n%.2000s", err, err6, rep7)
	}

	table.Reset()
	if err := runHostStats(ctx, &hostStatsOptions{dir: dir, stdout: &table}); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(table.String(), "sched:sched_switch") {
		t.Errorf("stats with DIR/meta lacks event names:\n%s", table.String())
	}
}

// A format or compression that does not exist, or zstd with v6, is a
// usage error of both commands that write a trace.dat, before any work.
func TestHostTraceDatFormatUsage(t *testing.T) {
	dir := t.TempDir()
	for _, args := range [][]string{
		{"--format", "v6", "--compress", "zstd"},
		{"--format", "v9"},
		{"--compress", "gzip"},
	} {
		for name, cmd := range map[string]*cobra.Command{"convert": newHostConvertCmd(), "collect": newHostCollectCmd()} {
			a := append([]string{dir}, args...)
			if name == "collect" {
				a = append([]string{"--dir", dir, "-o", filepath.Join(dir, "out")}, args...)
			}
			cmd.SetArgs(a)
			cmd.SetOut(io.Discard)
			cmd.SetErr(io.Discard)
			var u usageError
			if err := cmd.Execute(); !errors.As(err, &u) || !strings.Contains(err.Error(), "trace.dat") {
				t.Errorf("%s %q: %v, want a usage error about the trace.dat format", name, a, err)
			}
		}
	}
	if ents, _ := os.ReadDir(dir); len(ents) != 0 {
		t.Errorf("a refused command left %d entries in %s", len(ents), dir)
	}
}

// TestIntegrationHostConvertNamesBadPages: a random page at the start of a
// CPU's file: convert writes it as an empty page and names it (CPU, page,
// offset, reason) on stderr, trace-cmd reads the rest, and stats names it
// too while counting the good pages.
func TestIntegrationHostConvertNamesBadPages(t *testing.T) {
	tc := testutil.NeedProgram(t, "trace-cmd", "trace-cmd")
	inst := testutil.Instance(t, "vtrace-cmd-convert-bad")
	dir := t.TempDir()
	tracedattest.Record(t, inst, dir, 3)
	cpus, err := tracedat.CaptureCPUs(dir)
	if err != nil {
		t.Fatal(err)
	}
	bad := make([]byte, 4096)
	for i := range bad {
		bad[i] = byte(i*131 + 7)
	}
	binary.LittleEndian.PutUint64(bad[8:], 0x123456) // a commit far beyond the page
	raw, _ := os.ReadFile(cpus[0].Path)
	os.WriteFile(cpus[0].Path, append(bad, raw...), 0o644)
	var stdout, stderr bytes.Buffer
	err = runHostConvert(context.Background(), &hostConvertOptions{dir: dir, meta: inst, stdout: &stdout, stderr: &stderr})
	if err != nil {
		t.Fatal(err)
	}
	want := fmt.Sprintf("WARNING: cpu%d.raw: page 0 (offset 0) is corrupt, written as an empty page: commit", cpus[0].CPU)
	if !strings.Contains(stderr.String(), want) {
		t.Errorf("convert's stderr lacks %q:\n%s", want, stderr.String())
	}
	rep, err := exec.Command(tc, "report", "-i", filepath.Join(dir, "trace.dat")).CombinedOutput()
	if err != nil || !strings.Contains(string(rep), tracedattest.ProbeComm) {
		t.Errorf("trace-cmd report: %v, probe %q not named:\n%.2000s", err, tracedattest.ProbeComm, rep)
	}
	var table bytes.Buffer
	if err := runHostStats(context.Background(), &hostStatsOptions{dir: dir, stdout: &table}); err != nil {
		t.Fatal(err)
	}
	if want := fmt.Sprintf("WARNING: cpu%d.raw: page 0 (offset 0) is corrupt and was skipped", cpus[0].CPU); !strings.Contains(table.String(), want) ||
		!strings.Contains(table.String(), "1 corrupt pages skipped") {
		t.Errorf("stats lacks %q:\n%s", want, table.String())
	}
}
