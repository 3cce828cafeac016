package domxml

import (
	"fmt"
	"strconv"
	"strings"
)

// patcher gathers the text edits of one Patch and applies them.
type patcher struct {
	doc   []byte
	root  *node
	dev   *node // <devices>, nil when the document has none
	edits []edit
	used  map[int]bool
	max   int  // highest usable port on controller 0
	ctl   bool // a virtio-serial controller of index 0 is there

	newDev strings.Builder // devices for a <devices> element finish writes

	nl          string // the document's line ending
	devIndent   string // indentation of <devices>
	childIndent string // indentation of a device
}

// indents learns the document's line ending and indentation from <devices>
// and its first child, defaulting to libvirt's two spaces.
func (p *patcher) indents() {
	p.nl = "\n"
	if strings.Contains(string(p.doc), "\r\n") {
		p.nl = "\r\n"
	}
	p.devIndent, p.childIndent = "  ", "    "
	if p.dev == nil {
		return
	}
	if ls, ind := lineStart(p.doc, p.dev.start); ls < p.dev.start || (ls > 0 && p.doc[ls-1] == '\n') {
		p.devIndent = ind
	}
	p.childIndent = p.devIndent + p.unit()
	if len(p.dev.children) > 0 {
		c := p.dev.children[0]
		if ls, ind := lineStart(p.doc, c.start); ls > 0 && p.doc[ls-1] == '\n' && len(ind) > len(p.devIndent) {
			p.childIndent = ind
		}
	}
}

// unit guesses one level of indentation.
func (p *patcher) unit() string {
	if p.dev != nil && len(p.dev.children) > 0 {
		if ls, ind := lineStart(p.doc, p.dev.children[0].start); ls > 0 && p.doc[ls-1] == '\n' && strings.HasPrefix(ind, p.devIndent) && len(ind) > len(p.devIndent) {
			return ind[len(p.devIndent):]
		}
	}
	return "  "
}

func (p *patcher) hasController() bool {
	p.max = maxDefaultPort
	for _, c := range p.dev.allOrNil("controller") {
		if c.attrs["type"] != "virtio-serial" {
			continue
		}
		idx, err := parseUint(c.attrs["index"])
		if c.attrs["index"] != "" && (err != nil || idx != 0) {
			continue
		}
		if n, err := parseUint(c.attrs["ports"]); err == nil && n > 0 {
			p.max = min(n, maxPorts) - 1
		}
		return true
	}
	return false
}

// addController adds <controller type='virtio-serial' index='0'> with our
// alias, with enough ports for the channels being added.
func (p *patcher) addController(adding int) {
	need := min(len(p.used)+adding, maxPorts)
	ports := ""
	if need > maxDefaultPort+1 {
		ports = fmt.Sprintf(" ports='%d'", need)
		p.max = need - 1
	}
	u := p.unit()
	text := fmt.Sprintf("<controller type='virtio-serial' index='0'%s>%s%s%s<alias name='%s'/>%s%s</controller>",
		ports, p.nl, p.childIndent, u, ControllerAlias, p.nl, p.childIndent)
	p.insert(p.nl+p.childIndent+text, "controller")
}

func (p *patcher) portOK(port int) bool { return port >= 1 && port <= p.max }

func (p *patcher) freePort() (int, error) {
	for port := 1; port <= p.max; port++ {
		if !p.used[port] {
			p.used[port] = true
			return port, nil
		}
	}
	return 0, fmt.Errorf("patch domain XML: no free port on virtio-serial controller 0 (ports 1-%d taken): "+
		"raise its ports attribute or use fewer vCPUs (--cpus)", p.max)
}

// channel renders one channel element indented for a device at indent.
func (p *patcher) channel(name, src string, port int, indent string) string {
	in := p.nl + indent + p.unit()
	return "<channel type='pipe'>" +
		in + "<source path='" + escape(src) + "'/>" +
		in + "<target type='virtio' name='" + name + "'/>" +
		in + "<address type='virtio-serial' controller='0' bus='0' port='" + strconv.Itoa(port) + "'/>" +
		p.nl + indent + "</channel>"
}

// insert places text (which starts with a line break) after the last device
// named after, else after the last device, else at the end of <devices>.
// When <devices> is missing or self-closing, the text is gathered in newDev
// and finish writes the element.
func (p *patcher) insert(text, after string) {
	if p.dev == nil || p.dev.selfEnd {
		p.newDev.WriteString(text)
		return
	}
	var anchor *node
	for _, c := range p.dev.children {
		if c.name == after && !p.removed(c) {
			anchor = c
		}
	}
	if anchor == nil {
		for _, c := range p.dev.children {
			if !p.removed(c) {
				anchor = c
			}
		}
	}
	if anchor != nil {
		p.edits = append(p.edits, edit{anchor.end, anchor.end, text})
		return
	}
	// No device stays: insert before the line break that precedes
	// </devices>, or right before </devices> when it shares a line.
	at := p.dev.closeBeg
	if ls, _ := lineStart(p.doc, at); ls > p.dev.openEnd && p.doc[ls-1] == '\n' {
		at = ls - 1
		if at > p.dev.openEnd && p.doc[at-1] == '\r' {
			at--
		}
		p.edits = append(p.edits, edit{at, at, text})
		return
	}
	p.edits = append(p.edits, edit{at, at, text + p.nl + p.devIndent})
}

// finish writes the <devices> element gathered by insert, if any.
func (p *patcher) finish() {
	if p.newDev.Len() == 0 {
		return
	}
	body := p.newDev.String() + p.nl + p.devIndent + "</devices>"
	if d := p.dev; d != nil {
		// <devices/>: open it.
		p.edits = append(p.edits, edit{d.start, d.end, strings.TrimSuffix(string(p.doc[d.start:d.end]), "/>") + ">" + body})
		return
	}
	r := p.root
	if r.selfEnd {
		open := strings.TrimSuffix(string(p.doc[r.start:r.end]), "/>")
		p.edits = append(p.edits, edit{r.start, r.end, open + ">" + p.nl + p.devIndent + "<devices>" + body + p.nl + "</domain>"})
		return
	}
	// Before </domain>, as the last child, keeping the document's layout.
	at := r.closeBeg
	if ls, _ := lineStart(p.doc, at); ls > r.openEnd && p.doc[ls-1] == '\n' {
		at = ls - 1
		if at > r.openEnd && p.doc[at-1] == '\r' {
			at--
		}
		p.edits = append(p.edits, edit{at, at, p.nl + p.devIndent + "<devices>" + body})
		return
	}
	p.edits = append(p.edits, edit{at, at, p.nl + p.devIndent + "<devices>" + body + p.nl})
}

// removed reports whether an edit removes or replaces device c.
func (p *patcher) removed(c *node) bool {
	for _, e := range p.edits {
		if e.start <= c.start && c.end <= e.end && e.end > e.start {
			return true
		}
	}
	return false
}

var attrEscaper = strings.NewReplacer("&", "&amp;", "<", "&lt;", ">", "&gt;", "'", "&apos;", "\"", "&quot;",
	"\t", "&#x9;", "\n", "&#xA;", "\r", "&#xD;")

func escape(s string) string { return attrEscaper.Replace(s) }
