package wire

import (
	"bytes"
	"fmt"
	"math"
)

// State is what the agent is doing.
type State uint8

// Agent states; 0 is unknown.
const (
	StateIdle      State = 1
	StateRecording State = 2
)

func (s State) String() string {
	switch s {
	case StateIdle:
		return "idle"
	case StateRecording:
		return "recording"
	}
	return fmt.Sprintf("state-%d", uint8(s))
}

// MetaKind names an item of metadata.
type MetaKind uint8

// Metadata items, named as in tracefs (or /proc for kallsyms).
const (
	MetaHeaderPage    MetaKind = 1 // events/header_page
	MetaHeaderEvent   MetaKind = 2 // events/header_event
	MetaFormat        MetaKind = 3 // events/SYSTEM/EVENT/format; in a request: all of them
	MetaKallsyms      MetaKind = 4 // /proc/kallsyms
	MetaPrintkFormats MetaKind = 5 // printk_formats
	MetaSavedCmdlines MetaKind = 6 // saved_cmdlines
	MetaSavedTgids    MetaKind = 7 // saved_tgids
	MetaTraceClock    MetaKind = 8 // trace_clock
	MetaUname         MetaKind = 9 // uname -a
)

var metaNames = [...]string{
	MetaHeaderPage: "header_page", MetaHeaderEvent: "header_event", MetaFormat: "format",
	MetaKallsyms: "kallsyms", MetaPrintkFormats: "printk_formats", MetaSavedCmdlines: "saved_cmdlines",
	MetaSavedTgids: "saved_tgids", MetaTraceClock: "trace_clock", MetaUname: "uname",
}

func (k MetaKind) String() string {
	if int(k) < len(metaNames) && metaNames[k] != "" {
		return metaNames[k]
	}
	return fmt.Sprintf("meta-%d", uint8(k))
}

// Code classifies an Error message.
type Code uint32

// Error codes; receivers treat unknown codes as CodeInternal.
const (
	CodeMalformed   Code = 1 // a frame or message could not be read
	CodeUnsupported Code = 2 // a version or message type the sender does not handle
	CodeState       Code = 3 // not possible now (start while recording, stop while idle)
	CodeInternal    Code = 4 // anything else
)

// Hello opens the protocol (host → guest). It is always sent in a
// version-1 frame, so that every agent can read it.
type Hello struct {
	ID          uint64  // echoed by HelloReply
	Versions    []uint8 // protocol versions the host speaks
	Host        string  // host program, e.g. "vtrace"
	HostVersion string
}

// HelloReply answers Hello (guest → host) and describes the guest.
type HelloReply struct {
	ID           uint64
	Version      uint8 // chosen from Hello.Versions; every later frame uses it
	AgentVersion string
	CPUs         []uint32 // online CPUs, the ones streamed
	PageSize     uint32   // ring-buffer (sub-buffer) page size: 0 or 4 KiB to 1 MiB, power of two
	Clock        string   // trace clock in use, e.g. "local"
	Release      string   // uname -r
	Instance     string   // ftrace instance in use; "" for the top-level buffer
	State        State
}

// Settings are what a recording traces; zero fields leave the guest's
// tracefs as it is.
type Settings struct {
	Events    []string // "system" or "system:event"
	Filters   []Filter
	BufferKiB uint64 // per CPU
	Clock     string // "local", "global", "mono", "x86-tsc"...
	Instance  string // ftrace instance to record in; "" for the agent's default
}

// IsZero reports whether s asks for nothing: the agent keeps the guest's
// tracing as it is.
func (s Settings) IsZero() bool {
	return len(s.Events) == 0 && len(s.Filters) == 0 && s.BufferKiB == 0 && s.Clock == "" && s.Instance == ""
}

// Filter is a filter expression on an event or a whole system.
type Filter struct {
	Event string // "system" or "system:event"
	Expr  string // one line, as written to the event's filter file
}

// Start asks the agent to record (host → guest).
type Start struct {
	ID       uint64
	Settings Settings
}

// StartReply says whether recording started (guest → host).
type StartReply struct {
	ID    uint64
	Error string // "" when started; else what was wrong, and nothing was applied
}

// Stop asks the agent to stop recording (host → guest).
type Stop struct {
	ID uint64
}

// StopReply is sent after the last page was pushed (guest → host).
type StopReply struct {
	ID    uint64
	Error string
	CPUs  []CPUStats // final
}

// MetaRequest asks for metadata items (host → guest).
type MetaRequest struct {
	ID    uint64
	Items []MetaKind
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

// MetaEnd ends the answer to a MetaRequest (guest → host).
type MetaEnd struct {
	ID     uint64
	Items  uint64   // items sent
	Errors []string // items that could not be sent, and why
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

// Stats are sent every few seconds while recording (guest → host).
type Stats struct {
	CPUs []CPUStats
}

// StatusRequest asks for the agent's Status (host → guest).
type StatusRequest struct {
	ID uint64
}

// Status describes the agent (guest → host).
type Status struct {
	ID           uint64
	State        State
	Settings     Settings // of the current or last recording
	CPUs         []CPUStats
	AgentVersion string
}

// Error reports a failure (either way).
type Error struct {
	ID      uint64 // of the request it answers; 0 for none
	Code    Code
	Message string
}

func (*Hello) Type() Type         { return TypeHello }
func (*HelloReply) Type() Type    { return TypeHelloReply }
func (*Start) Type() Type         { return TypeStart }
func (*StartReply) Type() Type    { return TypeStartReply }
func (*Stop) Type() Type          { return TypeStop }
func (*StopReply) Type() Type     { return TypeStopReply }
func (*MetaRequest) Type() Type   { return TypeMetaRequest }
func (*MetaChunk) Type() Type     { return TypeMetaChunk }
func (*MetaEnd) Type() Type       { return TypeMetaEnd }
func (*Stats) Type() Type         { return TypeStats }
func (*StatusRequest) Type() Type { return TypeStatusRequest }
func (*Status) Type() Type        { return TypeStatus }
func (*Error) Type() Type         { return TypeError }

// marshal validates, then encodes.
func marshal(t Type, check func() error, fields func(*encoder)) ([]byte, error) {
	if err := check(); err != nil {
		return nil, fmt.Errorf("marshal %v: %w", t, err)
	}
	var e encoder
	fields(&e)
	return e.done(t)
}

// unmarshal decodes, then validates.
func unmarshal(t Type, p []byte, field func(tag byte, v []byte) error, check func() error) error {
	if len(p) > MaxFrame {
		return fmt.Errorf("unmarshal %v: payload of %d bytes: %w", t, len(p), ErrTooLarge)
	}
	if err := eachField(p, field); err != nil {
		return fmt.Errorf("unmarshal %v: %w", t, err)
	}
	if err := check(); err != nil {
		return fmt.Errorf("unmarshal %v: %w", t, err)
	}
	return nil
}

func noCheck() error { return nil }

// Hello

func (m *Hello) check() error {
	if len(m.Versions) == 0 || len(m.Versions) > MaxVersions {
		return fmt.Errorf("%d versions, want 1 to %d: %w", len(m.Versions), MaxVersions, ErrMalformed)
	}
	for _, v := range m.Versions {
		if v == 0 {
			return fmt.Errorf("version 0: %w", ErrMalformed)
		}
	}
	if err := checkText("host", m.Host, false); err != nil {
		return err
	}
	return checkText("host version", m.HostVersion, false)
}

func (m *Hello) MarshalBinary() ([]byte, error) {
	return marshal(m.Type(), m.check, func(e *encoder) {
		e.opt(1, m.ID)
		for _, v := range m.Versions {
			e.uint(2, uint64(v))
		}
		e.str(3, m.Host)
		e.str(4, m.HostVersion)
	})
}

func (m *Hello) UnmarshalBinary(p []byte) error {
	*m = Hello{}
	return unmarshal(m.Type(), p, func(tag byte, v []byte) (err error) {
		switch tag {
		case 1:
			m.ID, err = getUint(v)
		case 2:
			var x uint64
			if x, err = getSmall(v, math.MaxUint8); err == nil {
				m.Versions, err = add(m.Versions, uint8(x), MaxVersions)
			}
		case 3:
			m.Host, err = getString(v)
		case 4:
			m.HostVersion, err = getString(v)
		}
		return err
	}, m.check)
}

// HelloReply

func (m *HelloReply) check() error {
	if m.Version == 0 {
		return fmt.Errorf("version 0: %w", ErrMalformed)
	}
	if err := checkCPUs(m.CPUs); err != nil {
		return err
	}
	if p := m.PageSize; p != 0 && (p < 4096 || p > MaxFrame || p&(p-1) != 0) {
		return fmt.Errorf("page size %d: want a power of two from 4096 to %d: %w", p, MaxFrame, ErrMalformed)
	}
	if err := checkText("agent version", m.AgentVersion, false); err != nil {
		return err
	}
	if err := checkText("release", m.Release, false); err != nil {
		return err
	}
	if err := checkOptName("clock", m.Clock); err != nil {
		return err
	}
	return checkOptName("instance", m.Instance)
}

func (m *HelloReply) MarshalBinary() ([]byte, error) {
	return marshal(m.Type(), m.check, func(e *encoder) {
		e.opt(1, m.ID)
		e.opt(2, uint64(m.Version))
		e.str(3, m.AgentVersion)
		for _, c := range m.CPUs {
			e.uint(4, uint64(c))
		}
		e.opt(5, uint64(m.PageSize))
		e.str(6, m.Clock)
		e.str(7, m.Release)
		e.str(8, m.Instance)
		e.opt(9, uint64(m.State))
	})
}

func (m *HelloReply) UnmarshalBinary(p []byte) error {
	*m = HelloReply{}
	return unmarshal(m.Type(), p, func(tag byte, v []byte) (err error) {
		var x uint64
		switch tag {
		case 1:
			m.ID, err = getUint(v)
		case 2:
			x, err = getSmall(v, math.MaxUint8)
			m.Version = uint8(x)
		case 3:
			m.AgentVersion, err = getString(v)
		case 4:
			if x, err = getSmall(v, MaxCPUs-1); err == nil {
				m.CPUs, err = add(m.CPUs, uint32(x), MaxCPUs)
			}
		case 5:
			x, err = getSmall(v, MaxFrame)
			m.PageSize = uint32(x)
		case 6:
			m.Clock, err = getString(v)
		case 7:
			m.Release, err = getString(v)
		case 8:
			m.Instance, err = getString(v)
		case 9:
			x, err = getSmall(v, math.MaxUint8)
			m.State = State(x)
		}
		return err
	}, m.check)
}

// Settings, a nested record.

func (s *Settings) check() error {
	if len(s.Events) > MaxEvents || len(s.Filters) > MaxEvents {
		return fmt.Errorf("%d events, %d filters: %w", len(s.Events), len(s.Filters), ErrTooLarge)
	}
	for _, ev := range s.Events {
		if err := checkEvent(ev); err != nil {
			return err
		}
	}
	for _, f := range s.Filters {
		if err := checkEvent(f.Event); err != nil {
			return err
		}
		if f.Expr == "" {
			return fmt.Errorf("filter of %s: empty expression: %w", f.Event, ErrMalformed)
		}
		if err := checkText("filter of "+f.Event, f.Expr, false); err != nil {
			return err
		}
	}
	if err := checkOptName("clock", s.Clock); err != nil {
		return err
	}
	return checkOptName("instance", s.Instance)
}

func (s *Settings) encode(e *encoder) {
	e.strs(1, s.Events)
	for _, f := range s.Filters {
		e.nested(2, func(e *encoder) {
			e.str(1, f.Event)
			e.str(2, f.Expr)
		})
	}
	e.opt(3, s.BufferKiB)
	e.str(4, s.Clock)
	e.str(5, s.Instance)
}

func (s *Settings) decode(p []byte) error {
	return eachField(p, func(tag byte, v []byte) (err error) {
		switch tag {
		case 1:
			var ev string
			if ev, err = getString(v); err == nil {
				s.Events, err = add(s.Events, ev, MaxEvents)
			}
		case 2:
			var f Filter
			err = eachField(v, func(tag byte, v []byte) (err error) {
				switch tag {
				case 1:
					f.Event, err = getString(v)
				case 2:
					f.Expr, err = getString(v)
				}
				return err
			})
			if err == nil {
				s.Filters, err = add(s.Filters, f, MaxEvents)
			}
		case 3:
			s.BufferKiB, err = getUint(v)
		case 4:
			s.Clock, err = getString(v)
		case 5:
			s.Instance, err = getString(v)
		}
		return err
	})
}

// CPUStats, a nested record.

func checkStats(cpus []CPUStats) error {
	if len(cpus) > MaxCPUs {
		return fmt.Errorf("%d CPU entries: %w", len(cpus), ErrTooLarge)
	}
	var seen [MaxCPUs]bool
	for _, c := range cpus {
		if c.CPU >= MaxCPUs {
			return fmt.Errorf("CPU %d: want below %d: %w", c.CPU, MaxCPUs, ErrMalformed)
		}
		if seen[c.CPU] {
			return fmt.Errorf("CPU %d twice: %w", c.CPU, ErrMalformed)
		}
		seen[c.CPU] = true
		if err := checkText(fmt.Sprintf("cpu%d stats", c.CPU), c.Raw, true); err != nil {
			return err
		}
	}
	return nil
}

func encodeStats(e *encoder, tag byte, cpus []CPUStats) {
	for _, c := range cpus {
		e.nested(tag, func(e *encoder) {
			e.opt(1, uint64(c.CPU))
			e.opt(2, c.Entries)
			e.opt(3, c.Overrun)
			e.opt(4, c.CommitOverrun)
			e.opt(5, c.Bytes)
			e.opt(6, c.DroppedEvents)
			e.opt(7, c.ReadEvents)
			e.opt(8, c.OldestEventTS)
			e.opt(9, c.NowTS)
			e.opt(10, c.BytesSent)
			e.opt(11, c.PagesSent)
			e.str(12, c.Raw)
		})
	}
}

func decodeStats(cpus []CPUStats, v []byte) ([]CPUStats, error) {
	var c CPUStats
	err := eachField(v, func(tag byte, v []byte) (err error) {
		var x uint64
		switch tag {
		case 1:
			x, err = getSmall(v, MaxCPUs-1)
			c.CPU = uint32(x)
		case 2:
			c.Entries, err = getUint(v)
		case 3:
			c.Overrun, err = getUint(v)
		case 4:
			c.CommitOverrun, err = getUint(v)
		case 5:
			c.Bytes, err = getUint(v)
		case 6:
			c.DroppedEvents, err = getUint(v)
		case 7:
			c.ReadEvents, err = getUint(v)
		case 8:
			c.OldestEventTS, err = getUint(v)
		case 9:
			c.NowTS, err = getUint(v)
		case 10:
			c.BytesSent, err = getUint(v)
		case 11:
			c.PagesSent, err = getUint(v)
		case 12:
			c.Raw, err = getString(v)
		}
		return err
	})
	if err != nil {
		return cpus, err
	}
	return add(cpus, c, MaxCPUs)
}

// Start

func (m *Start) MarshalBinary() ([]byte, error) {
	return marshal(m.Type(), m.Settings.check, func(e *encoder) {
		e.opt(1, m.ID)
		e.nested(2, m.Settings.encode)
	})
}

func (m *Start) UnmarshalBinary(p []byte) error {
	*m = Start{}
	return unmarshal(m.Type(), p, func(tag byte, v []byte) (err error) {
		switch tag {
		case 1:
			m.ID, err = getUint(v)
		case 2:
			m.Settings = Settings{}
			err = m.Settings.decode(v)
		}
		return err
	}, m.Settings.check)
}

// StartReply

func (m *StartReply) check() error { return checkText("error", m.Error, true) }

func (m *StartReply) MarshalBinary() ([]byte, error) {
	return marshal(m.Type(), m.check, func(e *encoder) {
		e.opt(1, m.ID)
		e.str(2, m.Error)
	})
}

func (m *StartReply) UnmarshalBinary(p []byte) error {
	*m = StartReply{}
	return unmarshal(m.Type(), p, func(tag byte, v []byte) (err error) {
		switch tag {
		case 1:
			m.ID, err = getUint(v)
		case 2:
			m.Error, err = getString(v)
		}
		return err
	}, m.check)
}

// Stop, StatusRequest: an id alone.

func (m *Stop) MarshalBinary() ([]byte, error) { return marshalID(m.Type(), m.ID) }

func (m *Stop) UnmarshalBinary(p []byte) error {
	*m = Stop{}
	return unmarshalID(m.Type(), p, &m.ID)
}

func (m *StatusRequest) MarshalBinary() ([]byte, error) { return marshalID(m.Type(), m.ID) }

func (m *StatusRequest) UnmarshalBinary(p []byte) error {
	*m = StatusRequest{}
	return unmarshalID(m.Type(), p, &m.ID)
}

func marshalID(t Type, id uint64) ([]byte, error) {
	return marshal(t, noCheck, func(e *encoder) { e.opt(1, id) })
}

func unmarshalID(t Type, p []byte, id *uint64) error {
	return unmarshal(t, p, func(tag byte, v []byte) (err error) {
		if tag == 1 {
			*id, err = getUint(v)
		}
		return err
	}, noCheck)
}

// StopReply

func (m *StopReply) check() error {
	if err := checkText("error", m.Error, true); err != nil {
		return err
	}
	return checkStats(m.CPUs)
}

func (m *StopReply) MarshalBinary() ([]byte, error) {
	return marshal(m.Type(), m.check, func(e *encoder) {
		e.opt(1, m.ID)
		e.str(2, m.Error)
		encodeStats(e, 3, m.CPUs)
	})
}

func (m *StopReply) UnmarshalBinary(p []byte) error {
	*m = StopReply{}
	return unmarshal(m.Type(), p, func(tag byte, v []byte) (err error) {
		switch tag {
		case 1:
			m.ID, err = getUint(v)
		case 2:
			m.Error, err = getString(v)
		case 3:
			m.CPUs, err = decodeStats(m.CPUs, v)
		}
		return err
	}, m.check)
}

// MetaRequest

func (m *MetaRequest) check() error {
	if len(m.Items) > MaxItems {
		return fmt.Errorf("%d items: %w", len(m.Items), ErrTooLarge)
	}
	for _, k := range m.Items {
		if k == 0 {
			return fmt.Errorf("item 0: %w", ErrMalformed)
		}
	}
	return nil
}

func (m *MetaRequest) MarshalBinary() ([]byte, error) {
	return marshal(m.Type(), m.check, func(e *encoder) {
		e.opt(1, m.ID)
		for _, k := range m.Items {
			e.uint(2, uint64(k))
		}
	})
}

func (m *MetaRequest) UnmarshalBinary(p []byte) error {
	*m = MetaRequest{}
	return unmarshal(m.Type(), p, func(tag byte, v []byte) (err error) {
		switch tag {
		case 1:
			m.ID, err = getUint(v)
		case 2:
			var x uint64
			if x, err = getSmall(v, math.MaxUint8); err == nil {
				m.Items, err = add(m.Items, MetaKind(x), MaxItems)
			}
		}
		return err
	}, m.check)
}

// MetaChunk

func (m *MetaChunk) check() error {
	if m.Kind == 0 {
		return fmt.Errorf("item kind 0: %w", ErrMalformed)
	}
	switch {
	case m.Kind == MetaFormat:
		if err := checkFormatName(m.Name); err != nil {
			return err
		}
	case m.Name != "":
		return fmt.Errorf("%v item named %q: %w", m.Kind, clip(m.Name), ErrMalformed)
	}
	if m.Total > MaxMetaItem {
		return fmt.Errorf("%v item of %d bytes: %w", m.Kind, m.Total, ErrTooLarge)
	}
	if len(m.Data) > MaxChunk {
		return fmt.Errorf("%v chunk of %d bytes: %w", m.Kind, len(m.Data), ErrTooLarge)
	}
	if m.Offset > m.Total || uint64(len(m.Data)) > m.Total-m.Offset {
		return fmt.Errorf("%v chunk at %d of %d bytes past its total %d: %w", m.Kind, m.Offset, len(m.Data), m.Total, ErrMalformed)
	}
	if end := m.Offset + uint64(len(m.Data)); m.Last != (end == m.Total) {
		return fmt.Errorf("%v chunk ends at %d of %d with last=%t: %w", m.Kind, end, m.Total, m.Last, ErrMalformed)
	}
	return nil
}

func (m *MetaChunk) MarshalBinary() ([]byte, error) {
	return marshal(m.Type(), m.check, func(e *encoder) {
		e.opt(1, m.ID)
		e.opt(2, uint64(m.Kind))
		e.str(3, m.Name)
		e.opt(4, m.Offset)
		e.opt(5, m.Total)
		if len(m.Data) > 0 {
			e.field(6, m.Data)
		}
		e.flag(7, m.Last)
	})
}

func (m *MetaChunk) UnmarshalBinary(p []byte) error {
	*m = MetaChunk{}
	return unmarshal(m.Type(), p, func(tag byte, v []byte) (err error) {
		var x uint64
		switch tag {
		case 1:
			m.ID, err = getUint(v)
		case 2:
			x, err = getSmall(v, math.MaxUint8)
			m.Kind = MetaKind(x)
		case 3:
			m.Name, err = getString(v)
		case 4:
			m.Offset, err = getUint(v)
		case 5:
			m.Total, err = getUint(v)
		case 6:
			m.Data = bytes.Clone(v)
		case 7:
			m.Last, err = getBool(v)
		}
		return err
	}, m.check)
}

// MetaEnd

func (m *MetaEnd) check() error {
	if len(m.Errors) > MaxErrors {
		return fmt.Errorf("%d errors: %w", len(m.Errors), ErrTooLarge)
	}
	for _, s := range m.Errors {
		if err := checkText("error", s, true); err != nil {
			return err
		}
	}
	return nil
}

func (m *MetaEnd) MarshalBinary() ([]byte, error) {
	return marshal(m.Type(), m.check, func(e *encoder) {
		e.opt(1, m.ID)
		e.opt(2, m.Items)
		e.strs(3, m.Errors)
	})
}

func (m *MetaEnd) UnmarshalBinary(p []byte) error {
	*m = MetaEnd{}
	return unmarshal(m.Type(), p, func(tag byte, v []byte) (err error) {
		switch tag {
		case 1:
			m.ID, err = getUint(v)
		case 2:
			m.Items, err = getUint(v)
		case 3:
			var s string
			if s, err = getString(v); err == nil {
				m.Errors, err = add(m.Errors, s, MaxErrors)
			}
		}
		return err
	}, m.check)
}

// Stats

func (m *Stats) check() error { return checkStats(m.CPUs) }

func (m *Stats) MarshalBinary() ([]byte, error) {
	return marshal(m.Type(), m.check, func(e *encoder) { encodeStats(e, 1, m.CPUs) })
}

func (m *Stats) UnmarshalBinary(p []byte) error {
	*m = Stats{}
	return unmarshal(m.Type(), p, func(tag byte, v []byte) (err error) {
		if tag == 1 {
			m.CPUs, err = decodeStats(m.CPUs, v)
		}
		return err
	}, m.check)
}

// Status

func (m *Status) check() error {
	if err := m.Settings.check(); err != nil {
		return err
	}
	if err := checkStats(m.CPUs); err != nil {
		return err
	}
	return checkText("agent version", m.AgentVersion, false)
}

func (m *Status) MarshalBinary() ([]byte, error) {
	return marshal(m.Type(), m.check, func(e *encoder) {
		e.opt(1, m.ID)
		e.opt(2, uint64(m.State))
		e.nested(3, m.Settings.encode)
		encodeStats(e, 4, m.CPUs)
		e.str(5, m.AgentVersion)
	})
}

func (m *Status) UnmarshalBinary(p []byte) error {
	*m = Status{}
	return unmarshal(m.Type(), p, func(tag byte, v []byte) (err error) {
		switch tag {
		case 1:
			m.ID, err = getUint(v)
		case 2:
			var x uint64
			x, err = getSmall(v, math.MaxUint8)
			m.State = State(x)
		case 3:
			m.Settings = Settings{}
			err = m.Settings.decode(v)
		case 4:
			m.CPUs, err = decodeStats(m.CPUs, v)
		case 5:
			m.AgentVersion, err = getString(v)
		}
		return err
	}, m.check)
}

// Error

func (m *Error) check() error { return checkText("message", m.Message, true) }

func (m *Error) MarshalBinary() ([]byte, error) {
	return marshal(m.Type(), m.check, func(e *encoder) {
		e.opt(1, m.ID)
		e.opt(2, uint64(m.Code))
		e.str(3, m.Message)
	})
}

func (m *Error) UnmarshalBinary(p []byte) error {
	*m = Error{}
	return unmarshal(m.Type(), p, func(tag byte, v []byte) (err error) {
		switch tag {
		case 1:
			m.ID, err = getUint(v)
		case 2:
			var x uint64
			x, err = getSmall(v, math.MaxUint32)
			m.Code = Code(x)
		case 3:
			m.Message, err = getString(v)
		}
		return err
	}, m.check)
}
