package tracedat

import (
	"encoding/binary"

	"github.com/vtrace/vtrace/host/meta"
)

// body is a run of bytes kept as the parts it is made of, so that large
// metadata (kallsyms, formats) is written from the Set without a copy.
type body struct {
	parts [][]byte
	n     int64
}

func (b *body) add(p []byte) {
	b.parts = append(b.parts, p)
	b.n += int64(len(p))
}
func (b *body) cstr(s string)    { b.add(append([]byte(s), 0)) }
func (b *body) u16(v uint16)     { b.add(binary.LittleEndian.AppendUint16(nil, v)) }
func (b *body) u32(v uint32)     { b.add(binary.LittleEndian.AppendUint32(nil, v)) }
func (b *body) u64(v uint64)     { b.add(binary.LittleEndian.AppendUint64(nil, v)) }
func (b *body) sized32(p []byte) { b.u32(uint32(len(p))); b.add(p) }
func (b *body) sized64(p []byte) { b.u64(uint64(len(p))); b.add(p) }
func (b *body) bytes() []byte {
	out := make([]byte, 0, b.n)
	for _, p := range b.parts {
		out = append(out, p...)
	}
	return out
}

// metadata is the Set's content in trace.dat's encodings, which versions 6
// and 7 share: version 6 writes the six one after another, version 7 makes
// each the body of its own section.
type metadata struct {
	headers  body // "header_page\0", u64 length, text; "header_event\0", u64 length, text
	ftrace   body // u32 count, then per ftrace event u64 length + format
	events   body // u32 count of other systems; per system name\0, u32 count, per event u64 length + format
	kallsyms body // u32 length + /proc/kallsyms
	printk   body // u32 length + printk_formats
	cmdlines body // u64 length + saved_cmdlines
}

// metaBodies encodes a validated Set. Systems and events are in name
// order, ftrace apart; a system without events is left out.
func metaBodies(s *meta.Set) *metadata {
	m := &metadata{}
	m.headers.cstr("header_page")
	m.headers.sized64(s.HeaderPage)
	m.headers.cstr("header_event")
	m.headers.sized64(s.HeaderEvent)

	ftrace := s.Formats["ftrace"]
	m.ftrace.u32(uint32(len(ftrace)))
	for _, ev := range s.EventNames("ftrace") {
		m.ftrace.sized64(ftrace[ev])
	}

	systems := s.Systems()
	others := 0
	for _, sys := range systems {
		if sys != "ftrace" && len(s.Formats[sys]) > 0 {
			others++
		}
	}
	m.events.u32(uint32(others))
	for _, sys := range systems {
		if sys == "ftrace" || len(s.Formats[sys]) == 0 {
			continue
		}
		m.events.cstr(sys)
		m.events.u32(uint32(len(s.Formats[sys])))
		for _, ev := range s.EventNames(sys) {
			m.events.sized64(s.Formats[sys][ev])
		}
	}
	m.kallsyms.sized32(s.Kallsyms)
	m.printk.sized32(s.PrintkFormats)
	m.cmdlines.sized64(s.Cmdlines)
	return m
}
