package qmp

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/vtrace/vtrace/internal/testutil"
)

// libvirtReply is query-cpus-fast as libvirt's qemu-monitor-command
// returns it (qemu 7.2's fields).
const libvirtReply = `{"return":[{"thread-id":4242,"props":{"core-id":0,"thread-id":0,"node-id":0,"socket-id":1},"qom-path":"/machine/unattached/device[2]","cpu-index":1,"target":"x86_64"},` +
	`{"thread-id":4241,"props":{"core-id":0,"thread-id":0,"node-id":0,"socket-id":0},"qom-path":"/machine/unattached/device[0]","cpu-index":0,"target":"x86_64"}],"id":"libvirt-417"}`

func TestParseCPUsFast(t *testing.T) {
	t.Parallel()
	got, err := ParseCPUsFast([]byte(libvirtReply))
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff([]VCPU{{0, 4241}, {1, 4242}}, got); diff != "" {
		t.Errorf("vCPUs (-want +got):\n%s", diff)
	}
	for _, bad := range []string{
		``, `{}`, `{"return":[]}`, `{"return":{}}`,
		`{"error":{"class":"CommandNotFound","desc":"\u001b[2J"}}`,
		`{"return":[{"cpu-index":0}]}`,
		`{"return":[{"cpu-index":0,"thread-id":0}]}`,
		`{"return":[{"cpu-index":-1,"thread-id":5}]}`,
		`{"return":[{"cpu-index":8192,"thread-id":5}]}`,
		`{"return":[{"cpu-index":0,"thread-id":5},{"cpu-index":0,"thread-id":6}]}`,
		`{"return":[{"cpu-index":0,"thread-id":4294967296}]}`,
		`{"return":[{"cpu-index":0.5,"thread-id":5}]}`,
	} {
		if v, err := ParseCPUsFast([]byte(bad)); err == nil {
			t.Errorf("ParseCPUsFast(%s) = %v, want an error", bad, v)
		} else if strings.ContainsRune(err.Error(), 0x1b) {
			t.Errorf("error carries a control character: %q", err)
		}
	}
}

func FuzzParseCPUsFast(f *testing.F) {
	f.Add([]byte(libvirtReply))
	f.Add([]byte(`{"return":[{"cpu-index":0,"thread-id":1}]}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		v, err := ParseCPUsFast(b)
		if err != nil {
			return
		}
		for i, c := range v {
			if c.Thread <= 0 || c.CPU < 0 || i > 0 && c.CPU <= v[i-1].CPU {
				t.Fatalf("vCPUs %v", v)
			}
		}
	})
}

// TestIntegrationQEMUThreads: a real qemu (TCG, paused before it runs
// anything) names two vCPU threads, which are threads of its process.
func TestIntegrationQEMUThreads(t *testing.T) {
	qemu := testutil.NeedProgram(t, "qemu-system-x86_64", "qemu-system-x86")
	sock := filepath.Join(t.TempDir(), "qmp.sock")
	cmd := exec.Command(qemu, "-accel", "tcg", "-nodefaults", "-no-user-config", "-display", "none", "-S", "-smp", "2", "-m", "64",
		"-name", "vtrace-qmp-test,debug-threads=on", // vCPU threads named "CPU N/TCG"
		"-qmp", "unix:"+sock+",server=on,wait=off")
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	var stderr strings.Builder
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	for i := 0; i < 500; i++ { // the socket appears once qemu is up
		if _, err := os.Stat(sock); err == nil {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	v, err := VCPUThreads(context.Background(), sock)
	if err != nil {
		t.Fatalf("%v\n%s", err, stderr.String())
	}
	if len(v) != 2 || v[0].CPU != 0 || v[1].CPU != 1 || v[0].Thread == v[1].Thread {
		t.Fatalf("vCPUs %v, want CPUs 0 and 1 on two threads", v)
	}
	for _, c := range v {
		comm, err := os.ReadFile(fmt.Sprintf("/proc/%d/task/%d/comm", cmd.Process.Pid, c.Thread))
		if err != nil {
			t.Errorf("vCPU %d: thread %d is not qemu's: %v", c.CPU, c.Thread, err)
			continue
		}
		if !strings.Contains(string(comm), "CPU "+strconv.Itoa(c.CPU)) {
			t.Errorf("vCPU %d: thread %d is %q", c.CPU, c.Thread, comm)
		}
	}
	if _, err := VCPUThreads(context.Background(), filepath.Join(t.TempDir(), "none")); err == nil {
		t.Error("VCPUThreads of a missing socket: no error")
	}
}
