package guest

// Which CPUs a recording streams, decided at each Start: the --cpus list,
// or every CPU online then. A CPU that came online since gets its worker
// then; one that went offline is let go (its worker stays, idle). Every
// CPU the agent does not stream is said, with why (wire.UnstreamedCPU), so
// that the host never shows it as an empty stream.

import (
	"cmp"
	"errors"
	"fmt"
	"os"
	"slices"

	"github.com/vtrace/vtrace/proto/tracefs"
	"github.com/vtrace/vtrace/proto/wire"
)

// Why a CPU is not streamed, when it is not an error.
const (
	reasonOffline = "offline"
	reasonLate    = "came online during the recording: streamed from the next start"
)

// cpuFiles is where the kernel lists its CPUs.
var cpuFiles = struct{ online, possible string }{"/sys/devices/system/cpu/online", "/sys/devices/system/cpu/possible"}

// OnlineCPUs reads the kernel's list of online CPUs.
func OnlineCPUs() ([]int, error) { return readCPUList(cpuFiles.online) }

// PossibleCPUs reads the kernel's list of the CPUs that may ever be online
// (those with per_cpu/cpuN in tracefs).
func PossibleCPUs() ([]int, error) { return readCPUList(cpuFiles.possible) }

func readCPUList(path string) ([]int, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read cpu list: %w", err)
	}
	cpus, err := ParseCPUList(string(b))
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return cpus, nil
}

// cpuPlan is the CPUs a recording streams and those it does not.
type cpuPlan struct {
	workers    []*worker // by CPU
	unstreamed []wire.UnstreamedCPU
}

func (p cpuPlan) cpus() []int {
	cpus := make([]int, len(p.workers))
	for i, w := range p.workers {
		cpus[i] = w.cpu
	}
	return cpus
}

func (p cpuPlan) wireCPUs() []uint32 {
	cpus := make([]uint32, len(p.workers))
	for i, w := range p.workers {
		cpus[i] = uint32(w.cpu)
	}
	return cpus
}

// plan decides what a Start now streams: the CPUs of --cpus, or every
// online CPU, that are online; an online CPU without a worker gets one
// (that may fail: no port for it). The other CPUs of --cpus, or the other
// possible CPUs, are unstreamed. A CPU that cannot be streamed is logged
// when warn is set (a Start; not a mere question). a.mu is held.
func (a *Agent) plan(warn bool) cpuPlan {
	online, err := OnlineCPUs()
	if err != nil {
		a.log.Warn("cannot tell which CPUs are online: streaming the ones the agent has", "err", err)
		for _, w := range a.allWorkers() {
			online = append(online, w.cpu)
		}
	}
	known := a.cfg.CPUs
	if known == nil {
		if known, err = PossibleCPUs(); err != nil {
			a.log.Debug("cannot tell which CPUs are possible", "err", err)
		}
		known = union(known, online)
	}
	var p cpuPlan
	for _, cpu := range known {
		if !slices.Contains(online, cpu) {
			p.unstreamed = append(p.unstreamed, wire.UnstreamedCPU{CPU: uint32(cpu), Reason: reasonOffline})
			continue
		}
		w := a.worker(cpu)
		if w == nil {
			if w, err = a.addWorker(cpu); err != nil {
				if warn {
					a.log.Warn("cannot stream a CPU", "cpu", cpu, "err", err)
				}
				p.unstreamed = append(p.unstreamed, wire.UnstreamedCPU{CPU: uint32(cpu), Reason: wire.FreeText(err.Error())})
				continue
			}
		}
		p.workers = append(p.workers, w)
	}
	return p
}

// logChange says which CPUs the agent streams: when it begins, and at a
// Start whose CPUs differ from the last one's.
func (a *Agent) logChange(p cpuPlan) {
	cpus := p.cpus()
	if slices.Equal(cpus, a.lastCPUs) {
		a.log.Debug("streaming", "cpus", FormatCPUList(cpus))
		return
	}
	if a.lastCPUs != nil {
		for _, cpu := range cpus {
			if !slices.Contains(a.lastCPUs, cpu) {
				a.log.Info("CPU streamed from now on", "cpu", cpu)
			}
		}
		for _, cpu := range a.lastCPUs {
			if !slices.Contains(cpus, cpu) {
				a.log.Info("CPU no longer streamed", "cpu", cpu, "why", reasonOf(p.unstreamed, cpu))
			}
		}
	}
	attrs := []any{"cpus", FormatCPUList(cpus)}
	if len(p.unstreamed) > 0 {
		attrs = append(attrs, "not", formatUnstreamed(p.unstreamed))
	}
	a.log.Info("CPUs streamed", attrs...)
	a.lastCPUs = cpus
}

// unstreamedNow is the CPUs recording r does not stream, now: those it did
// not stream from its start, and those that came online since. a.mu is
// held.
func (a *Agent) unstreamedNow(r *recording) []wire.UnstreamedCPU {
	online, err := OnlineCPUs()
	if err != nil {
		return r.cpus.unstreamed
	}
	var out []wire.UnstreamedCPU
	listed := map[int]bool{}
	for _, u := range r.cpus.unstreamed {
		if u.Reason == reasonOffline && slices.Contains(online, int(u.CPU)) {
			u.Reason = reasonLate
		}
		out = append(out, u)
		listed[int(u.CPU)] = true
	}
	for _, cpu := range online {
		if listed[cpu] || (a.cfg.CPUs != nil && !slices.Contains(a.cfg.CPUs, cpu)) ||
			slices.ContainsFunc(r.cpus.workers, func(w *worker) bool { return w.cpu == cpu }) {
			continue
		}
		out = append(out, wire.UnstreamedCPU{CPU: uint32(cpu), Reason: reasonLate})
	}
	slices.SortFunc(out, func(x, y wire.UnstreamedCPU) int { return cmp.Compare(x.CPU, y.CPU) })
	return out
}

// worker returns cpu's worker, or nil.
func (a *Agent) worker(cpu int) *worker {
	for _, w := range a.allWorkers() {
		if w.cpu == cpu {
			return w
		}
	}
	return nil
}

// allWorkers is every worker the agent has, by CPU.
func (a *Agent) allWorkers() []*worker {
	a.wmu.Lock()
	defer a.wmu.Unlock()
	return a.workers
}

// addWorker opens cpu's worker on the default directory and starts its
// goroutine, which runs until quit (a fatal error of it goes to a.failed).
func (a *Agent) addWorker(cpu int) (*worker, error) {
	w, err := newWorker(cpu, tracefs.PerCPU(a.tracefs, cpu, "trace_pipe_raw"), a.layout, a.cfg.PipeSize, a.openSink, a.pace, &a.abort, a.log)
	if err != nil {
		return nil, err
	}
	a.wmu.Lock()
	ws := slices.Clone(a.workers) // readers keep the slice they took
	i, _ := slices.BinarySearchFunc(ws, cpu, func(w *worker, cpu int) int { return w.cpu - cpu })
	a.workers = slices.Insert(ws, i, w)
	reserveProcs(len(a.workers))
	a.wmu.Unlock()
	go func() {
		if err := w.run(); err != nil && !errors.Is(err, errAborted) {
			select {
			case a.failed <- err:
			default:
			}
		}
		close(w.exited)
	}()
	return w, nil
}

func union(a, b []int) []int {
	out := slices.Concat(a, b)
	slices.Sort(out)
	return slices.Compact(out)
}

func reasonOf(un []wire.UnstreamedCPU, cpu int) string {
	for _, u := range un {
		if int(u.CPU) == cpu {
			return u.Reason
		}
	}
	return "not asked for"
}

// formatUnstreamed writes "1: offline; 3: find port ..." for the log.
func formatUnstreamed(un []wire.UnstreamedCPU) string {
	var s string
	for i, u := range un {
		if i > 0 {
			s += "; "
		}
		s += fmt.Sprintf("%d: %s", u.CPU, u.Reason)
	}
	return s
}
