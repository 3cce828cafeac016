package fifo

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"slices"
	"strings"
)

// TraceCPUs lists the CPUs that have a data FIFO (trace-path-cpuN.out) in
// dir, in increasing order: the streams a collector reads. Names that are
// not exactly that are ignored. A missing dir, or one without data FIFOs,
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
		if !ok {
			continue
		}
		if n, ok := ParseTraceName(name); ok {
			cpus = append(cpus, n)
		}
	}
	if len(cpus) == 0 {
		return nil, fmt.Errorf("find data FIFOs: no %s.out in %s: run `vtrace host setup <domain>` first", TraceName(0), dir)
	}
	slices.Sort(cpus)
	return cpus, nil
}
