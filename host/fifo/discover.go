package fifo

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"slices"
	"strings"

	"github.com/vtrace/vtrace/proto/channel"
)

// TraceCPUs lists the CPUs that have a data channel in dir, a FIFO
// trace-path-cpuN.out or a unix socket trace-path-cpuN, in increasing
// order: the streams a collector reads. Names that are not exactly that
// are ignored. A missing dir, or one without data FIFOs,
// is an error that says to run `vtrace host setup` first.
func TraceCPUs(dir string) ([]int, error) {
	ents, err := os.ReadDir(dir)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return nil, fmt.Errorf("read FIFO directory: %w: run `vtrace host setup <domain>` first", err)
		}
		return nil, fmt.Errorf("read FIFO directory: %w", accessHint(err))
	}
	var cpus []int
	for _, e := range ents {
		name, ok := strings.CutSuffix(e.Name(), ".out")
		if !ok && e.Type() == fs.ModeSocket {
			name, ok = e.Name(), true
		}
		if !ok {
			continue
		}
		if n, ok := channel.ParseData(name); ok && !slices.Contains(cpus, n) {
			cpus = append(cpus, n)
		}
	}
	if len(cpus) == 0 {
		return nil, fmt.Errorf("find data channels: no %s.out or %s socket in %s: run `vtrace host setup <domain>` first",
			channel.Data(0), channel.Data(0), dir)
	}
	slices.Sort(cpus)
	return cpus, nil
}

// Names lists the channels that have a FIFO (NAME.in or NAME.out) or a
// unix socket (NAME) in dir, control port first, then by CPU. A missing
// dir has none.
func Names(dir string) ([]string, error) {
	st, err := os.Lstat(dir)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("inspect %s: %w", dir, err)
	}
	if !st.IsDir() {
		return nil, nil // Create and Remove say why they refuse it
	}
	ents, err := os.ReadDir(dir)
	if err != nil {
		return nil, fmt.Errorf("list %s: %w", dir, err)
	}
	ctl, cpus := false, []int{}
	for _, e := range ents {
		var n string
		ok := false
		switch e.Type() {
		case fs.ModeSocket:
			n, ok = e.Name(), true
		case fs.ModeNamedPipe:
			if n, ok = strings.CutSuffix(e.Name(), ".in"); !ok {
				n, ok = strings.CutSuffix(e.Name(), ".out")
			}
		}
		if !ok {
			continue
		}
		if n == channel.Ctl {
			ctl = true
		} else if cpu, ok := channel.ParseData(n); ok && !slices.Contains(cpus, cpu) {
			cpus = append(cpus, cpu)
		}
	}
	slices.Sort(cpus)
	var names []string
	if ctl {
		names = append(names, channel.Ctl)
	}
	for _, c := range cpus {
		names = append(names, channel.Data(c))
	}
	return names, nil
}
