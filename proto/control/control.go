// Package control splits what the host writes on the agent's control port
// into orders. It is pure Go: the guest agent feeds it whatever one read(2)
// returned, and it hands back the orders and the garbage it found, line by
// line.
//
// The orders are "1" (start streaming) and "0" (stop streaming), one a line.
// Lines may end in "\n" or "\r\n"; several orders may arrive in one read
// ("1\n0\n") and one order may be split across reads. A bare "1" or "0" with
// no newline is taken as an order when it is what a read ended with (the
// kernel's old trace-agent and `echo -n 1` send that); a newline arriving
// later then ends an empty line, which is ignored. Lines longer than MaxLine
// are discarded up to their newline and reported once as garbage, so a
// misbehaving host cannot make the agent's buffer grow.
//
// Orders share the control port with proto/wire's frames: a frame ends the
// line before it (End), and EndsWithOrder is how proto/wire's Demux tells
// an order from the frame its bytes seemed to start.
package control

import (
	"bytes"

	"github.com/vtrace/vtrace/proto/clip"
)

// MaxLine bounds a control line; a longer one is garbage.
const MaxLine = 4096

// maxShown bounds the garbage kept for a log message.
const maxShown = 64

// Order is what the host asks for.
type Order byte

// The orders, spelled as on the wire.
const (
	Start Order = '1'
	Stop  Order = '0'
)

func (o Order) String() string {
	switch o {
	case Start:
		return "start"
	case Stop:
		return "stop"
	}
	return "unknown"
}

// Item is one thing found in the input: an order, or a line that is not one.
type Item struct {
	Order   Order  // Start or Stop; 0 when Garbage is set
	Garbage []byte // the offending line (at most 64 bytes of it), for the log
	Long    bool   // the garbage line was longer than MaxLine
}

// Parser keeps the partial line between reads. The zero value is ready.
type Parser struct {
	line       []byte
	discarding bool // inside an overlong line, until its newline
}

// Feed takes the bytes of one read and returns the items they complete.
func (p *Parser) Feed(chunk []byte) []Item {
	var items []Item
	for len(chunk) > 0 {
		i := bytes.IndexByte(chunk, '\n')
		if i < 0 {
			p.append(chunk, &items)
			break
		}
		p.append(chunk[:i], &items)
		chunk = chunk[i+1:]
		if p.discarding {
			p.discarding = false
		} else if it, ok := parseLine(p.line); ok {
			items = append(items, it)
		}
		p.line = p.line[:0]
	}
	// A read that ends with a bare order is that order.
	if !p.discarding && len(p.line) > 0 {
		if it, ok := parseLine(p.line); ok && it.Garbage == nil {
			items = append(items, it)
			p.line = p.line[:0]
		}
	}
	return items
}

// End ends the line in progress as a newline would, and returns what it
// was: proto/wire's Demux calls a frame, or bytes that failed to be one,
// the end of the text line before it (no order line runs through a frame).
func (p *Parser) End() []Item {
	line, discarding := p.line, p.discarding
	p.line, p.discarding = p.line[:0], false
	if discarding {
		return nil // reported when the line grew too long
	}
	if it, ok := parseLine(line); ok {
		return []Item{it}
	}
	return nil
}

// EndsWithOrder reports whether b ends with a whole order line: a newline,
// then a line Feed takes for an order, then its own newline ("\n1\n",
// "\n 0\r\n"). Only the last MaxLine+2 bytes of b are looked at.
func EndsWithOrder(b []byte) bool {
	if len(b) < 3 || b[len(b)-1] != '\n' {
		return false
	}
	body := b[:len(b)-1]
	lo := max(0, len(body)-MaxLine-1)
	i := bytes.LastIndexByte(body[lo:], '\n')
	if i < 0 {
		return false
	}
	it, ok := parseLine(body[lo+i+1:])
	return ok && it.Garbage == nil
}

// append adds b to the partial line, switching to discarding when the line
// grows past MaxLine.
func (p *Parser) append(b []byte, items *[]Item) {
	if p.discarding {
		return
	}
	if len(p.line)+len(b) > MaxLine {
		shown := append(p.line, b[:min(len(b), maxShown)]...) // p.line is emptied below
		*items = append(*items, Item{Garbage: bytes.Clone(clip.Text(shown, maxShown)), Long: true})
		p.line = p.line[:0]
		p.discarding = true
		return
	}
	p.line = append(p.line, b...)
}

// parseLine reads one line without its newline. Empty lines are no item.
func parseLine(line []byte) (Item, bool) {
	s := bytes.TrimSpace(line)
	switch {
	case len(s) == 0:
		return Item{}, false
	case len(s) == 1 && (s[0] == byte(Start) || s[0] == byte(Stop)):
		return Item{Order: Order(s[0])}, true
	}
	return Item{Garbage: bytes.Clone(clip.Text(line, maxShown))}, true
}
