package tracedat

import (
	"cmp"
	"encoding/binary"
	"fmt"
	"math"
	"slices"

	"github.com/vtrace/vtrace/proto/tracefs"
)

// Option ids of a merged host and guest timeline (trace-cmd's
// trace-cmd.dat.v6 and .v7 documents; the same ids in both versions).
const (
	OptionTraceID   = 11
	OptionTimeShift = 12
	OptionGuest     = 13
)

// TimeShiftInterpolate is TIME_SHIFT's flag that makes trace-cmd
// interpolate between neighbouring points (TRACECMD_TSYNC_FLAG_INTERPOLATE);
// without it each point's shift holds until the next.
const TimeShiftInterpolate = 1

// Timeline holds what lets trace-cmd and KernelShark show a host's file
// and its guests' files on one timeline: `trace-cmd report -i host.dat -i
// guest.dat` maps every guest timestamp ts of a file with TIME_SHIFT to
// ts + shift(ts), shift interpolated between the points, so its events
// sort among the host's; GUEST in the host's file names the host thread
// that runs each guest vCPU.
type Timeline struct {
	// TraceID is the file's TRACEID; 0 writes none.
	TraceID uint64
	// Peer is the host file's TRACEID, written in TIME_SHIFT; Shift are
	// its points (a guest's file only; none: no TIME_SHIFT).
	Peer  uint64
	Shift []ShiftPoint
	// Guests, in a host's file, are its guests (one GUEST option each).
	Guests []Guest
}

// ShiftPoint says that at guest time Guest the host's clock read Guest +
// Shift (ns).
type ShiftPoint struct {
	Guest int64
	Shift int64
}

// Guest is a guest of the host that wrote the file.
type Guest struct {
	Name    string // e.g. the libvirt domain
	TraceID uint64 // the TRACEID of the guest's file
	VCPUs   []VCPU
}

// VCPU maps a guest CPU to the host thread that runs it (qemu's vCPU
// thread).
type VCPU struct {
	CPU int
	TID int
}

// check refuses what trace-cmd would misread.
func (tl *Timeline) check() error {
	if tl == nil {
		return nil
	}
	if len(tl.Shift) > 0 && (tl.TraceID == 0 || tl.Peer == 0) {
		return fmt.Errorf("TIME_SHIFT needs this file's and its host's trace ids")
	}
	if !slices.IsSortedFunc(tl.Shift, func(a, b ShiftPoint) int { return cmp.Compare(a.Guest, b.Guest) }) {
		return fmt.Errorf("TIME_SHIFT points out of order")
	}
	for _, p := range tl.Shift {
		if p.Guest < 0 {
			return fmt.Errorf("TIME_SHIFT point at %d: a negative time", p.Guest)
		}
	}
	for _, g := range tl.Guests {
		if g.Name == "" || len(g.Name) > 255 || slices.Contains([]byte(g.Name), 0) {
			return fmt.Errorf("GUEST name %q: want 1 to 255 bytes without NUL", g.Name)
		}
		seen := map[int]bool{}
		for _, v := range g.VCPUs {
			if v.CPU < 0 || v.CPU > tracefs.MaxCPU || seen[v.CPU] || v.TID <= 0 || v.TID > math.MaxInt32 {
				return fmt.Errorf("GUEST %s: vCPU %d on thread %d", g.Name, v.CPU, v.TID)
			}
			seen[v.CPU] = true
		}
	}
	return nil
}

// options encodes the timeline's options for a file of cpus CPU slots:
// TRACEID; TIME_SHIFT (trace id of the host u64, flags u32, CPU count u32,
// then per CPU: count n u32, n times u64, n offsets s64, n scalings u64;
// then per CPU n fraction bits u64), every CPU with the same points, each
// scaling 1 and fraction 0; and GUEST per guest (name NUL, trace id u64,
// vCPU count u32, per vCPU cpu u32 and host thread id u32), vCPUs 0 to the
// highest (a vCPU without a known thread gets 0).
func (tl *Timeline) options(cpus int) []Option {
	if tl == nil {
		return nil
	}
	var out []Option
	le := binary.LittleEndian
	if tl.TraceID != 0 {
		out = append(out, Option{OptionTraceID, le.AppendUint64(nil, tl.TraceID)})
	}
	if len(tl.Shift) > 0 {
		b := le.AppendUint64(nil, tl.Peer)
		b = le.AppendUint32(b, TimeShiftInterpolate)
		b = le.AppendUint32(b, uint32(cpus))
		for range cpus {
			b = le.AppendUint32(b, uint32(len(tl.Shift)))
			for _, p := range tl.Shift {
				b = le.AppendUint64(b, uint64(p.Guest))
			}
			for _, p := range tl.Shift {
				b = le.AppendUint64(b, uint64(p.Shift))
			}
			for range tl.Shift {
				b = le.AppendUint64(b, 1)
			}
		}
		for range cpus {
			for range tl.Shift {
				b = le.AppendUint64(b, 0)
			}
		}
		out = append(out, Option{OptionTimeShift, b})
	}
	for _, g := range tl.Guests {
		n := 0
		for _, v := range g.VCPUs {
			n = max(n, v.CPU+1)
		}
		tids := make([]int, n)
		for _, v := range g.VCPUs {
			tids[v.CPU] = v.TID
		}
		b := append([]byte(g.Name), 0)
		b = le.AppendUint64(b, g.TraceID)
		b = le.AppendUint32(b, uint32(n))
		for cpu, tid := range tids {
			b = le.AppendUint32(b, uint32(cpu))
			b = le.AppendUint32(b, uint32(tid))
		}
		out = append(out, Option{OptionGuest, b})
	}
	return out
}
