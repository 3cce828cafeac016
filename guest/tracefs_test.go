package guest

import (
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/vtrace/vtrace/internal/sys"
	"github.com/vtrace/vtrace/proto/channel"
)

func TestTracefsFromMountinfo(t *testing.T) {
	info := `22 1 0:21 / /sys rw,nosuid - sysfs sysfs rw
41 22 0:13 / /sys/kernel/tracing rw,relatime - tracefs nodev rw
50 22 0:13 / /mnt/my\040trace rw shared:5 - tracefs nodev rw
51 22 0:14 / /sys/kernel/debug rw - debugfs debugfs rw
`
	got := TracefsFromMountinfo([]byte(info))
	want := []string{"/sys/kernel/tracing", "/mnt/my trace"}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("TracefsFromMountinfo = %q, want %q", got, want)
	}
}

func TestFindTracefsErrors(t *testing.T) {
	_, err := FindTracefs(t.TempDir())
	if err == nil || !strings.Contains(err.Error(), "per_cpu") {
		t.Errorf("FindTracefs(empty dir) = %v, want an error about per_cpu", err)
	}
}

func TestFindPort(t *testing.T) {
	dir := t.TempDir()
	ports := filepath.Join(dir, "ports")
	sysClass := filepath.Join(dir, "class")
	dev := filepath.Join(dir, "dev")
	for _, d := range []string{ports, filepath.Join(sysClass, "vport1p2"), filepath.Join(sysClass, "vport1p3"), dev} {
		os.MkdirAll(d, 0o755)
	}
	mkfifo := func(p string) {
		t.Helper()
		if err := sys.Mkfifo(p, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	mkfifo(filepath.Join(ports, "trace-path-cpu0"))
	mkfifo(filepath.Join(ports, "agent-ctl-path.in"))
	mkfifo(filepath.Join(ports, "agent-ctl-path.out"))
	mkfifo(filepath.Join(ports, "trace-path-cpu1.in"))
	mkfifo(filepath.Join(ports, "trace-path-cpu1.out"))
	mkfifo(filepath.Join(ports, "trace-path-cpu4.out")) // no .in: not a loopback pair
	os.WriteFile(filepath.Join(sysClass, "vport1p2", "name"), []byte("trace-pipe-cpu2\n"), 0o644)
	os.WriteFile(filepath.Join(sysClass, "vport1p3", "name"), []byte("trace-path-cpu3\n"), 0o644)

	f := portFinder{dir: ports, sysClass: sysClass, dev: dev}
	for _, tc := range []struct {
		names []string
		in    bool
		want  string
	}{
		{dataPortNames(0), false, filepath.Join(ports, "trace-path-cpu0")},
		{dataPortNames(1), false, filepath.Join(ports, "trace-path-cpu1.out")},
		{[]string{channel.Ctl}, true, filepath.Join(ports, "agent-ctl-path.in")},
		{dataPortNames(2), false, filepath.Join(dev, "vport1p2")},
		{dataPortNames(3), false, filepath.Join(dev, "vport1p3")},
	} {
		got, err := f.find(tc.names, tc.in)
		if err != nil || got != tc.want {
			t.Errorf("find(%v) = %q, %v; want %q", tc.names, got, err, tc.want)
		}
	}
	_, err := f.find(dataPortNames(4), false)
	if err == nil || !strings.Contains(err.Error(), "trace-path-cpu4") || !strings.Contains(err.Error(), sysClass) {
		t.Errorf("find(cpu4) = %v, want an error naming the port and where it looked", err)
	}
}
