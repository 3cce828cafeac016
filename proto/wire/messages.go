package wire

import (
	"math"

	"github.com/vtrace/vtrace/proto/tracefs"
)

// The messages, in the order of docs/protocol.md. Each type is followed by
// its field table: the one place a field's tag is written, which both
// MarshalBinary and UnmarshalBinary read (codec.go), with the bounds the
// decoder applies as it reads (a value's largest number, a list's largest
// count). What a whole message must satisfy is its check method
// (validate.go). "id" (tag 1 where present) is chosen by the host and
// echoed in the reply. The numbered enumerations the fields carry
// (MetaKind, State, Code) are in enums.go.

// Hello opens the protocol (host → guest). It is always sent in a
// version-1 frame, so that every agent can read it.
type Hello struct {
	ID          uint64  // echoed by HelloReply
	Versions    []uint8 // protocol versions the host speaks
	Host        string  // host program, e.g. "vtrace"
	HostVersion string
}

func (*Hello) Type() Type { return TypeHello }

func (m *Hello) fields() []field {
	return []field{
		{1, number(&m.ID)},
		{2, numbers(&m.Versions, math.MaxUint8, MaxVersions)},
		{3, str(&m.Host)},
		{4, str(&m.HostVersion)},
	}
}

// HelloReply answers Hello (guest → host) and describes the guest.
type HelloReply struct {
	ID           uint64
	Version      uint8 // chosen from Hello.Versions; every later frame uses it
	AgentVersion string
	CPUs         []uint32 // the CPUs streamed: the recording's, or (idle) those the next Start streams
	PageSize     uint32   // ring-buffer (sub-buffer) page size: 0 or 4 KiB to 1 MiB, power of two
	Clock        string   // trace clock in use, e.g. "local"
	Release      string   // uname -r
	Instance     string   // ftrace instance in use; "" for the top-level buffer
	State        State
	Unstreamed   []UnstreamedCPU // CPUs not in CPUs, and why
}

func (*HelloReply) Type() Type { return TypeHelloReply }

func (m *HelloReply) fields() []field {
	return []field{
		{1, number(&m.ID)},
		{2, numberUpTo(&m.Version, math.MaxUint8)},
		{3, str(&m.AgentVersion)},
		{4, numbers(&m.CPUs, tracefs.MaxCPU, MaxCPUs)},
		{5, numberUpTo(&m.PageSize, MaxFrame)},
		{6, str(&m.Clock)},
		{7, str(&m.Release)},
		{8, str(&m.Instance)},
		{9, numberUpTo(&m.State, math.MaxUint8)},
		{10, records(&m.Unstreamed, MaxCPUs)},
	}
}

// Start asks the agent to record (host → guest).
type Start struct {
	ID       uint64
	Settings Settings
}

func (*Start) Type() Type { return TypeStart }

func (m *Start) fields() []field {
	return []field{
		{1, number(&m.ID)},
		{2, record(&m.Settings)},
	}
}

// StartReply says whether recording started (guest → host), and on which
// CPUs.
type StartReply struct {
	ID         uint64
	Error      string          // "" when started; else what was wrong, and nothing was applied
	CPUs       []uint32        // the CPUs this recording streams
	Unstreamed []UnstreamedCPU // the CPUs it does not, and why
}

func (*StartReply) Type() Type { return TypeStartReply }

func (m *StartReply) fields() []field {
	return []field{
		{1, number(&m.ID)},
		{2, str(&m.Error)},
		{3, numbers(&m.CPUs, tracefs.MaxCPU, MaxCPUs)},
		{4, records(&m.Unstreamed, MaxCPUs)},
	}
}

// Stop asks the agent to stop recording (host → guest).
type Stop struct {
	ID uint64
}

func (*Stop) Type() Type { return TypeStop }

func (m *Stop) fields() []field {
	return []field{
		{1, number(&m.ID)},
	}
}

// StopReply is sent after the last page was pushed (guest → host).
type StopReply struct {
	ID         uint64
	Error      string
	CPUs       []CPUStats      // final, one entry per CPU streamed
	Unstreamed []UnstreamedCPU // CPUs the recording did not stream, and why, as known at its stop
}

func (*StopReply) Type() Type { return TypeStopReply }

func (m *StopReply) fields() []field {
	return []field{
		{1, number(&m.ID)},
		{2, str(&m.Error)},
		{3, records(&m.CPUs, MaxCPUs)},
		{4, records(&m.Unstreamed, MaxCPUs)},
	}
}

// MetaRequest asks for metadata items (host → guest).
type MetaRequest struct {
	ID    uint64
	Items []MetaKind
}

func (*MetaRequest) Type() Type { return TypeMetaRequest }

func (m *MetaRequest) fields() []field {
	return []field{
		{1, number(&m.ID)},
		{2, numbers(&m.Items, math.MaxUint8, MaxItems)},
	}
}

// MetaChunk carries one piece of one item (guest → host). The pieces of an
// item are sent in order and not interleaved with another item's.
type MetaChunk struct {
	ID     uint64 // of the MetaRequest
	Kind   MetaKind
	Name   string // "system/event" for MetaFormat, else ""
	Offset uint64 // of Data within the item
	Total  uint64 // item size, the same in every chunk
	Data   []byte
	Last   bool // Offset+len(Data) == Total
}

func (*MetaChunk) Type() Type { return TypeMetaChunk }

func (m *MetaChunk) fields() []field {
	return []field{
		{1, number(&m.ID)},
		{2, numberUpTo(&m.Kind, math.MaxUint8)},
		{3, str(&m.Name)},
		{4, number(&m.Offset)},
		{5, number(&m.Total)},
		{6, data(&m.Data)},
		{7, boolean(&m.Last)},
	}
}

// MetaEnd ends the answer to a MetaRequest (guest → host).
type MetaEnd struct {
	ID     uint64
	Items  uint64   // items sent
	Errors []string // items that could not be sent, and why
}

func (*MetaEnd) Type() Type { return TypeMetaEnd }

func (m *MetaEnd) fields() []field {
	return []field{
		{1, number(&m.ID)},
		{2, number(&m.Items)},
		{3, strs(&m.Errors, MaxErrors)},
	}
}

// Stats are sent every few seconds while recording (guest → host).
type Stats struct {
	CPUs []CPUStats
}

func (*Stats) Type() Type { return TypeStats }

func (m *Stats) fields() []field {
	return []field{
		{1, records(&m.CPUs, MaxCPUs)},
	}
}

// StatusRequest asks for the agent's Status (host → guest).
type StatusRequest struct {
	ID uint64
}

func (*StatusRequest) Type() Type { return TypeStatusRequest }

func (m *StatusRequest) fields() []field {
	return []field{
		{1, number(&m.ID)},
	}
}

// Status describes the agent (guest → host).
type Status struct {
	ID           uint64
	State        State
	Settings     Settings   // of the current or last recording
	CPUs         []CPUStats // one entry per CPU streamed
	AgentVersion string
	Unstreamed   []UnstreamedCPU // CPUs not streamed, and why: now while recording, else at the last stop
}

func (*Status) Type() Type { return TypeStatus }

func (m *Status) fields() []field {
	return []field{
		{1, number(&m.ID)},
		{2, numberUpTo(&m.State, math.MaxUint8)},
		{3, record(&m.Settings)},
		{4, records(&m.CPUs, MaxCPUs)},
		{5, str(&m.AgentVersion)},
		{6, records(&m.Unstreamed, MaxCPUs)},
	}
}

// Error reports a failure (either way).
type Error struct {
	ID      uint64 // of the request it answers; 0 for none
	Code    Code
	Message string
}

func (*Error) Type() Type { return TypeError }

func (m *Error) fields() []field {
	return []field{
		{1, number(&m.ID)},
		{2, numberUpTo(&m.Code, math.MaxUint32)},
		{3, str(&m.Message)},
	}
}

// ClockProbe asks the agent to read a trace clock at once (host → guest),
// so that the host can place the guest's trace on its own timeline. The
// host sends many, one at a time, and keeps those of the shortest round
// trip.
type ClockProbe struct {
	ID    uint64
	Clock string // trace clock to read: one user space can read ("mono", "mono_raw", "boot", "tai")
	Mark  bool   // also write the marker "vtrace-clock ID recv" into the recording's trace_marker
}

func (*ClockProbe) Type() Type { return TypeClockProbe }

func (m *ClockProbe) fields() []field {
	return []field{
		{1, number(&m.ID)},
		{2, str(&m.Clock)},
		{3, boolean(&m.Mark)},
	}
}

// ClockReply answers a ClockProbe (guest → host) with two readings of the
// trace clock in its units (ns): as the probe was read from the port, and
// just before the reply was written. Error says why the clock could not be
// read (both readings are then 0).
type ClockReply struct {
	ID       uint64
	Clock    string
	Received uint64
	Sent     uint64
	Error    string
	Marked   bool // the marker the probe asked for is in the guest's trace
}

func (*ClockReply) Type() Type { return TypeClockReply }

func (m *ClockReply) fields() []field {
	return []field{
		{1, number(&m.ID)},
		{2, str(&m.Clock)},
		{3, number(&m.Received)},
		{4, number(&m.Sent)},
		{5, str(&m.Error)},
		{6, boolean(&m.Marked)},
	}
}

// Records: nested in messages as the value of one field.

// Settings are what a recording traces, and how soon its pages move; zero
// fields leave the guest's tracefs, and the agent's own latency, as they
// are.
type Settings struct {
	Events    []string // "system" or "system:event"
	Filters   []Filter
	BufferKiB uint64 // per CPU
	Clock     string // "local", "global", "mono", "x86-tsc"...
	Instance  string // ftrace instance to record in; "" for the agent's default
	// LatencyMS bounds how long an event recorded waits in the guest
	// before the agent sends it, in milliseconds (at most MaxLatencyMS);
	// 0: the agent's own (its --latency).
	LatencyMS uint32
	// SubbufKiB is the ring buffer's sub-buffer (page) size in KiB, a
	// power of two from 4 to MaxSubbufKiB; 0 leaves the kernel's (Linux
	// 6.8 and later: buffer_subbuf_size_kb).
	SubbufKiB uint32
}

func (s *Settings) fields() []field {
	return []field{
		{1, strs(&s.Events, MaxEvents)},
		{2, records(&s.Filters, MaxEvents)},
		{3, number(&s.BufferKiB)},
		{4, str(&s.Clock)},
		{5, str(&s.Instance)},
		{6, numberUpTo(&s.LatencyMS, MaxLatencyMS)},
		{7, numberUpTo(&s.SubbufKiB, MaxSubbufKiB)},
	}
}

// IsZero reports whether s asks for nothing to be traced differently: the
// agent keeps the guest's tracing as it is. LatencyMS is left out: it says
// how soon pages move, not what is recorded.
func (s Settings) IsZero() bool {
	return len(s.Events) == 0 && len(s.Filters) == 0 && s.BufferKiB == 0 && s.Clock == "" && s.Instance == "" &&
		s.SubbufKiB == 0
}

// Filter is a filter expression on an event or a whole system.
type Filter struct {
	Event string // "system" or "system:event"
	Expr  string // one line, as written to the event's filter file
}

func (f *Filter) fields() []field {
	return []field{
		{1, str(&f.Event)},
		{2, str(&f.Expr)},
	}
}

// CPUStats are one CPU's counters: the kernel's per_cpu/cpuN/stats and
// the agent's own. Timestamps are in the trace clock's units (ns, or
// cycles for counter clocks).
type CPUStats struct {
	CPU           uint32
	Entries       uint64
	Overrun       uint64
	CommitOverrun uint64
	Bytes         uint64
	DroppedEvents uint64
	ReadEvents    uint64
	OldestEventTS uint64
	NowTS         uint64
	BytesSent     uint64 // by the agent, on the CPU's data port
	PagesSent     uint64
	Raw           string // per_cpu/cpuN/stats as read, for trace.dat's CPUSTAT
}

func (c *CPUStats) fields() []field {
	return []field{
		{1, numberUpTo(&c.CPU, tracefs.MaxCPU)},
		{2, number(&c.Entries)},
		{3, number(&c.Overrun)},
		{4, number(&c.CommitOverrun)},
		{5, number(&c.Bytes)},
		{6, number(&c.DroppedEvents)},
		{7, number(&c.ReadEvents)},
		{8, number(&c.OldestEventTS)},
		{9, number(&c.NowTS)},
		{10, number(&c.BytesSent)},
		{11, number(&c.PagesSent)},
		{12, str(&c.Raw)},
	}
}

// UnstreamedCPU is a CPU the agent does not stream, and why: offline, come
// online during the recording (streamed from the next Start), or what kept
// it out (no data port, ...). A CPU is either streamed or said to be
// unstreamed, so the host never shows it as an empty stream.
type UnstreamedCPU struct {
	CPU    uint32
	Reason string
}

func (c *UnstreamedCPU) fields() []field {
	return []field{
		{1, numberUpTo(&c.CPU, tracefs.MaxCPU)},
		{2, str(&c.Reason)},
	}
}
