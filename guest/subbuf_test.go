package guest_test

import (
	"errors"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/vtrace/vtrace/guest"
	"github.com/vtrace/vtrace/internal/sys"
	"github.com/vtrace/vtrace/internal/testutil"
	"github.com/vtrace/vtrace/proto/wire"
)

// subbufOf reads dir's buffer_subbuf_size_kb.
func subbufOf(t *testing.T, dir string) uint32 {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(dir, "buffer_subbuf_size_kb"))
	if err != nil {
		t.Fatal(err)
	}
	n, err := strconv.ParseUint(strings.TrimSpace(string(b)), 10, 32)
	if err != nil {
		t.Fatal(err)
	}
	return uint32(n)
}

// needSubbufFile: this machine's kernel must have buffer_subbuf_size_kb.
func needSubbufFile(t *testing.T, dir string) {
	t.Helper()
	_, err := os.Stat(filepath.Join(dir, "buffer_subbuf_size_kb"))
	testutil.Need(t, err == nil, "a kernel with buffer_subbuf_size_kb (Linux 6.8 and later)",
		"run the tests on Linux 6.8 or later (the agent's sub-buffer sizes are tested in a 6.12 guest by internal/e2e)")
}

// kernelTakesSubbuf reports whether this kernel lets buffer_subbuf_size_kb
// be written: some refuse every write (EPERM, the same value included) by
// a policy outside ftrace.
func kernelTakesSubbuf(t *testing.T) bool {
	t.Helper()
	dir := testutil.Instance(t, "vtrace-guest-subbuf-probe")
	p := filepath.Join(dir, "buffer_subbuf_size_kb")
	err := os.WriteFile(p, []byte(strconv.Itoa(int(subbufOf(t, dir)))), 0)
	if err != nil && !errors.Is(err, sys.EPERM) {
		t.Fatalf("write %s: %v", p, err)
	}
	t.Logf("this kernel takes writes to buffer_subbuf_size_kb: %t (%v)", err == nil, err)
	return err == nil
}

// TestIntegrationProtocolSubbuf: sub-buffer sizes from the host's settings
// and from the agent's --subbuf-size, on this machine's kernel. The size
// in place is taken without a write; one the kernel cannot have (over its
// 128 pages, or over the agent's pipe) is refused before anything changes;
// any other size is set in the agent's instance, whose pages the handshake
// then reports, or, where the kernel refuses the file (EPERM), refused
// with an error that says so, tracefs as it was.
func TestIntegrationProtocolSubbuf(t *testing.T) {
	inst, cpus, dir := loopback(t, "vtrace-guest-subbuf-base", 0)
	root := filepath.Dir(filepath.Dir(inst))
	needSubbufFile(t, inst)
	takes := kernelTakesSubbuf(t)
	cur := subbufOf(t, inst)
	name := "vtrace-guest-subbuf"
	h := newProtoHost(t, dir, inst, cpus)
	startAgent(t, guest.Config{Tracefs: inst, PortsDir: dir, Instance: name, SubbufKiB: cur, PipeSize: 64 << 10})
	hello(t, h)
	before := snapshot(t, root, inst, name)
	sw := []string{"sched:sched_switch"}

	// The size in place: nothing to write, from the settings and from the
	// agent's own --subbuf-size (the streamed directory as is).
	for _, s := range []wire.Settings{{Events: sw, SubbufKiB: cur}, {}} {
		if e := start(t, h, s); e != "" {
			t.Fatalf("start %+v (the size in place): %s", s, e)
		}
		if r := hello(t, h); int(r.PageSize) != int(cur)<<10 {
			t.Errorf("hello while recording %+v: pages of %d bytes, want %d", s, r.PageSize, cur<<10)
		}
		stop(t, h)
		if after := snapshot(t, root, inst, name); after != before {
			t.Errorf("a capture with %+v changed tracefs:\nbefore:\n%s\nafter:\n%s", s, before, after)
		}
	}

	largest := uint32(sys.PageSize()*128) >> 10
	for _, tc := range []struct {
		kib  uint32
		want []string
	}{
		{largest * 2, []string{"sub-buffer size", strconv.Itoa(int(largest)) + " KiB", "128 pages"}},
		{128, []string{"sub-buffer size 128 KiB", "pipe of 64 KiB"}},
	} {
		e := start(t, h, wire.Settings{Events: sw, SubbufKiB: tc.kib})
		for _, w := range tc.want {
			if !strings.Contains(e, w) {
				t.Errorf("start with sub-buffers of %d KiB: error %q, want it to say %q", tc.kib, e, w)
			}
		}
		if after := snapshot(t, root, inst, name); after != before {
			t.Errorf("a refused start changed tracefs:\nbefore:\n%s\nafter:\n%s", before, after)
		}
	}

	kib := cur * 4
	e := start(t, h, wire.Settings{Events: sw, SubbufKiB: kib})
	if !takes {
		for _, w := range []string{"sub-buffer size " + strconv.Itoa(int(kib)) + " KiB", "operation not permitted", "refuses writes", "buffer_subbuf_size_kb"} {
			if !strings.Contains(e, w) {
				t.Errorf("start with sub-buffers of %d KiB on a kernel that refuses the file: error %q, want it to say %q", kib, e, w)
			}
		}
		if after := snapshot(t, root, inst, name); after != before {
			t.Errorf("a refused start changed tracefs:\nbefore:\n%s\nafter:\n%s", before, after)
		}
		return
	}
	if e != "" {
		t.Fatalf("start with sub-buffers of %d KiB: %s", kib, e)
	}
	own := filepath.Join(root, "instances", name)
	if got := subbufOf(t, own); got != kib {
		t.Errorf("the agent's instance: sub-buffers of %d KiB, want %d", got, kib)
	}
	if r := hello(t, h); int(r.PageSize) != int(kib)<<10 {
		t.Errorf("hello while recording: pages of %d bytes, want %d", r.PageSize, kib<<10)
	}
	write(t, filepath.Join(own, "trace_marker"), "after a sub-buffer change")
	time.Sleep(10 * time.Millisecond)
	stop(t, h)
	if after := snapshot(t, root, inst, name); after != before {
		t.Errorf("a capture changed tracefs:\nbefore:\n%s\nafter:\n%s", before, after)
	}
}

// TestAgentSubbufConfig: an agent whose --subbuf-size cannot be had does
// not start, and says why.
func TestAgentSubbufConfig(t *testing.T) {
	inst, _, dir := loopback(t, "vtrace-guest-subbuf-config", 0)
	needSubbufFile(t, inst)
	for _, tc := range []struct {
		cfg  guest.Config
		want string
	}{
		{guest.Config{SubbufKiB: 12}, "power of two"},
		{guest.Config{SubbufKiB: 128, PipeSize: 64 << 10}, "--pipe-size"},
	} {
		tc.cfg.Tracefs, tc.cfg.PortsDir, tc.cfg.StateDir = inst, dir, t.TempDir()
		a, err := guest.New(tc.cfg, nil)
		if err == nil {
			a.Close()
		}
		if err == nil || !strings.Contains(err.Error(), tc.want) || !strings.Contains(err.Error(), "--subbuf-size") {
			t.Errorf("New with sub-buffers of %d KiB, pipe %d: %v; want an error about --subbuf-size saying %q", tc.cfg.SubbufKiB, tc.cfg.PipeSize, err, tc.want)
		}
	}
}
