package guest

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
)

// Where tracefs usually is, after what /proc/self/mountinfo says.
var tracefsDefaults = []string{"/sys/kernel/tracing", "/sys/kernel/debug/tracing"}

// TracefsFromMountinfo returns the mount points of tracefs listed in the
// text of /proc/self/mountinfo, in the order listed.
func TracefsFromMountinfo(mountinfo []byte) []string {
	var dirs []string
	sc := bufio.NewScanner(bytes.NewReader(mountinfo))
	for sc.Scan() {
		// id parent major:minor root mountpoint options [optional...] - fstype source superopts
		pre, post, ok := strings.Cut(sc.Text(), " - ")
		if !ok {
			continue
		}
		f := strings.Fields(pre)
		if len(f) < 5 || strings.SplitN(post, " ", 2)[0] != "tracefs" {
			continue
		}
		dirs = append(dirs, unescapeMount(f[4]))
	}
	return dirs
}

// unescapeMount undoes the kernel's octal escapes (\040 for a space).
func unescapeMount(s string) string {
	if !strings.Contains(s, `\`) {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' && i+4 <= len(s) {
			if n, err := strconv.ParseUint(s[i+1:i+4], 8, 8); err == nil {
				b.WriteByte(byte(n))
				i += 3
				continue
			}
		}
		b.WriteByte(s[i])
	}
	return b.String()
}

// FindTracefs returns dir when it is a tracefs directory (the root or an
// instance: it has per_cpu/), or, when dir is empty, the first tracefs
// found in /proc/self/mountinfo, /sys/kernel/tracing and
// /sys/kernel/debug/tracing.
func FindTracefs(dir string) (string, error) {
	if dir != "" {
		if !isDir(filepath.Join(dir, "per_cpu")) {
			return "", fmt.Errorf("check tracefs %s: no per_cpu directory there (want a tracefs mount point or an instance under instances/)", dir)
		}
		return dir, nil
	}
	var candidates []string
	if b, err := os.ReadFile("/proc/self/mountinfo"); err == nil {
		candidates = TracefsFromMountinfo(b)
	}
	for _, d := range append(candidates, tracefsDefaults...) {
		if isDir(filepath.Join(d, "per_cpu")) {
			return d, nil
		}
	}
	return "", errors.New("find tracefs: not mounted (looked in /proc/self/mountinfo, " +
		strings.Join(tracefsDefaults, ", ") + "); mount it with: mount -t tracefs nodev /sys/kernel/tracing")
}

func isDir(p string) bool {
	st, err := os.Stat(p)
	return err == nil && st.IsDir()
}

func exists(p string) bool {
	_, err := os.Stat(p)
	return err == nil
}
