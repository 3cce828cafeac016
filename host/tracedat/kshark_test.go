package tracedat

import (
	"bufio"
	"bytes"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/vtrace/vtrace/internal/testutil"
)

// buildKshark builds testdata/kshark_count.c, which loads a file with
// libkshark, the library KernelShark 2.x opens files with, and returns the
// program's path.
func buildKshark(t *testing.T) string {
	t.Helper()
	gcc := testutil.NeedProgram(t, "gcc", "gcc libc6-dev")
	pc := testutil.NeedProgram(t, "pkg-config", "pkgconf")
	flags, err := exec.Command(pc, "--cflags", "--libs", "libkshark").Output()
	testutil.Need(t, err == nil, "libkshark's pkg-config file",
		"apt-get install -y --no-install-recommends libkshark-dev libjson-c-dev libtracecmd-dev libtracefs-dev libtraceevent-dev (scripts/deps.sh test)")
	bin := filepath.Join(t.TempDir(), "kshark_count")
	args := append([]string{"-O1", "-o", bin, filepath.Join("testdata", "kshark_count.c")}, strings.Fields(string(flags))...)
	if out, err := exec.Command(gcc, args...).CombinedOutput(); err != nil {
		t.Fatalf("build testdata/kshark_count.c: %v\n%s", err, out)
	}
	return bin
}

// ksharkCount loads file with the program of buildKshark and returns the
// entries KernelShark loaded per CPU and in all. It fails the test when
// KernelShark cannot open or load the file.
func ksharkCount(t *testing.T, kshark, file string) (map[int]int64, int64) {
	t.Helper()
	var stdout, stderr bytes.Buffer
	cmd := exec.Command(kshark, file)
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("KernelShark's library cannot load %s: %v\n%s", file, err, stderr.String())
	}
	perCPU := map[int]int64{}
	total := int64(-1)
	sc := bufio.NewScanner(&stdout)
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		switch {
		case len(f) == 3 && f[0] == "cpu":
			cpu, err1 := strconv.Atoi(f[1])
			n, err2 := strconv.ParseInt(f[2], 10, 64)
			if err1 != nil || err2 != nil {
				t.Fatalf("kshark_count: bad line %q", sc.Text())
			}
			perCPU[cpu] = n
		case len(f) == 2 && f[0] == "total":
			n, err := strconv.ParseInt(f[1], 10, 64)
			if err != nil {
				t.Fatalf("kshark_count: bad line %q", sc.Text())
			}
			total = n
		default:
			t.Fatalf("kshark_count: bad line %q", sc.Text())
		}
	}
	if total < 0 {
		t.Fatalf("kshark_count printed no total:\n%s", stdout.String())
	}
	return perCPU, total
}
