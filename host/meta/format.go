package meta

import (
	"bytes"
	"fmt"
	"strconv"

	"github.com/vtrace/vtrace/proto/clip"
	"github.com/vtrace/vtrace/proto/wire"
)

// Format is what vtrace needs from an event's format file: its name and
// the id that leads each of its records (common_type).
type Format struct {
	Name string
	ID   uint16
}

// ParseFormat reads the "name:" and "ID:" lines of a tracefs format file
// and checks that a "format:" section follows. It does not interpret the
// fields; trace-cmd does that.
func ParseFormat(text []byte) (Format, error) {
	var f Format
	var haveName, haveID, haveFormat bool
	for len(text) > 0 {
		line := text
		if i := bytes.IndexByte(text, '\n'); i >= 0 {
			line, text = text[:i], text[i+1:]
		} else {
			text = nil
		}
		key, val, ok := bytes.Cut(line, []byte(":"))
		if !ok {
			continue
		}
		val = bytes.TrimSpace(val)
		switch string(bytes.TrimSpace(key)) {
		case "name":
			if haveName {
				return Format{}, fmt.Errorf("parse format: two name lines")
			}
			if !wire.ValidName(string(val)) {
				return Format{}, fmt.Errorf("parse format: invalid event name %q", clip.Text(val, maxQuoted))
			}
			f.Name, haveName = string(val), true
		case "ID":
			if haveID {
				return Format{}, fmt.Errorf("parse format: two ID lines")
			}
			id, err := strconv.ParseUint(string(val), 10, 16)
			if err != nil || id == 0 {
				return Format{}, fmt.Errorf("parse format: event id %q is not in [1, 65535]", clip.Text(val, maxQuoted))
			}
			f.ID, haveID = uint16(id), true
		case "format":
			haveFormat = true
		}
	}
	switch {
	case !haveName:
		return Format{}, fmt.Errorf("parse format: no name line")
	case !haveID:
		return Format{}, fmt.Errorf("parse format: no ID line")
	case !haveFormat:
		return Format{}, fmt.Errorf("parse format: no format section")
	}
	return f, nil
}

// maxQuoted bounds the untrusted text an error quotes.
const maxQuoted = 64
