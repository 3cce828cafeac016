package main

import (
	"bytes"
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/vtrace/vtrace/host/meta"
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

	table.Reset()
	if err := runHostStats(ctx, &hostStatsOptions{dir: dir, stdout: &table}); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(table.String(), "sched:sched_switch") {
		t.Errorf("stats with DIR/meta lacks event names:\n%s", table.String())
	}
}
