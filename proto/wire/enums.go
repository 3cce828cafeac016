package wire

import "fmt"

// Enumerations carried as numbers.

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

// Code classifies an Error message.
type Code uint32

// Error codes; receivers treat unknown codes as CodeInternal.
const (
	CodeMalformed   Code = 1 // a frame or message could not be read
	CodeUnsupported Code = 2 // a version or message type the sender does not handle
	CodeState       Code = 3 // not possible now (start while recording, stop while idle)
	CodeInternal    Code = 4 // anything else
)
