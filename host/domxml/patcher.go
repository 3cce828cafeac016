package domxml

import (
	"fmt"
	"regexp"
	"slices"
	"strconv"
	"strings"
)

// patcher gathers the text edits of one Patch and applies them.
type patcher struct {
	doc   []byte
	root  *node
	dev   *node // <devices>, nil when the document has none
	edits []edit
	used  map[addr]bool // ports taken, by devices that stay and by our channels
	ctls  []*serialCtl  // the virtio-serial controllers, by index; then those Patch adds

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

// serialCtl is a virtio-serial controller of the document, or one Patch
// adds.
type serialCtl struct {
	index int
	node  *node // nil for one Patch adds
	ports int   // its ports attribute, or defaultPorts
	ours  bool  // added by Patch (ControllerAlias)
	grown bool  // ports raised by this Patch
	drop  bool  // removed by this Patch
}

// controllers finds the virtio-serial controllers, in index order.
func (p *patcher) controllers() {
	for _, c := range p.dev.allOrNil("controller") {
		if c.attrs["type"] != "virtio-serial" {
			continue
		}
		sc := &serialCtl{index: controllerIndex(c), node: c, ports: defaultPorts, ours: isOurController(c)}
		if n, err := parseUint(c.attrs["ports"]); err == nil && n > 0 {
			sc.ports = min(n, maxPorts)
		}
		if p.ctl(sc.index) == nil { // libvirt refuses duplicates; the first counts
			p.ctls = append(p.ctls, sc)
		}
	}
	slices.SortFunc(p.ctls, func(a, b *serialCtl) int { return a.index - b.index })
}

func (p *patcher) ctl(index int) *serialCtl {
	for _, c := range p.ctls {
		if c.index == index && !c.drop {
			return c
		}
	}
	return nil
}

// portOK reports whether a is a port channels may use: 1 and up on a
// controller that has it.
func (p *patcher) portOK(a addr) bool {
	c := p.ctl(a.ctl)
	return c != nil && a.port >= 1 && a.port < c.ports
}

// allocate takes n free ports, up to port 99 of a controller (see
// maxXMLPorts): first those of the controllers there are, in index order;
// then more ports on the last controller Patch added; then new
// controllers.
func (p *patcher) allocate(n int) []addr {
	var free []addr
	// take adds c's free ports from from up to its ports, and returns
	// the highest it took (0: none).
	take := func(c *serialCtl, from int) int {
		last := 0
		for port := from; port < min(c.ports, maxXMLPorts) && len(free) < n; port++ {
			if a := (addr{c.index, port}); !p.used[a] {
				p.used[a] = true
				free = append(free, a)
				last = port
			}
		}
		return last
	}
	for _, c := range p.ctls {
		take(c, 1)
	}
	if len(free) < n {
		var last *serialCtl
		for _, c := range p.ctls {
			if c.ours {
				last = c
			}
		}
		if last != nil && last.ports < maxXMLPorts {
			old := last.ports
			last.ports = maxXMLPorts
			last.ports = max(old, take(last, old)+1)
			last.grown = last.ports != old
		}
	}
	for len(free) < n {
		next := 0
		if len(p.ctls) > 0 {
			next = p.ctls[len(p.ctls)-1].index + 1
		}
		c := &serialCtl{index: next, ports: maxXMLPorts, ours: true}
		p.ctls = append(p.ctls, c)
		c.ports = max(defaultPorts, take(c, 1)+1)
	}
	return free
}

// dropUnused removes the controllers Patch added, other than index 0,
// that no port in use is on.
func (p *patcher) dropUnused() {
	on := map[int]bool{}
	for a := range p.used {
		on[a.ctl] = true
	}
	for _, c := range p.ctls {
		if c.ours && c.node != nil && c.index > 0 && !on[c.index] {
			c.drop = true
			p.edits = append(p.edits, removal(p.doc, c.node))
		}
	}
}

// addControllers writes the controllers Patch added and the new ports
// attribute of those it grew.
func (p *patcher) addControllers() {
	u := p.unit()
	for _, c := range p.ctls {
		ports := ""
		if c.ports != defaultPorts {
			ports = fmt.Sprintf(" ports='%d'", c.ports)
		}
		switch {
		case c.node == nil:
			alias := ControllerAlias
			if c.index > 0 {
				alias += strconv.Itoa(c.index)
			}
			text := fmt.Sprintf("<controller type='virtio-serial' index='%d'%s>%s%s%s<alias name='%s'/>%s%s</controller>",
				c.index, ports, p.nl, p.childIndent, u, alias, p.nl, p.childIndent)
			p.insert(p.nl+p.childIndent+text, "controller")
		case c.grown:
			p.edits = append(p.edits, edit{c.node.start, c.node.openEnd, setPorts(string(p.doc[c.node.start:c.node.openEnd]), c.ports)})
		}
	}
}

// portsAttr matches an attribute named ports in a start tag.
var portsAttr = regexp.MustCompile(`(\s)ports\s*=\s*('[^']*'|"[^"]*")`)

// setPorts returns the start tag tag with its ports attribute set to n,
// added at the end of the tag when it has none.
func setPorts(tag string, n int) string {
	v := "ports='" + strconv.Itoa(n) + "'"
	if portsAttr.MatchString(tag) {
		return portsAttr.ReplaceAllString(tag, "${1}"+v)
	}
	end := strings.TrimSuffix(strings.TrimSuffix(tag, ">"), "/")
	return end + " " + v + tag[len(end):]
}

// channel renders one channel element indented for a device at indent.
func (p *patcher) channel(name, src string, a addr, indent string) string {
	in := p.nl + indent + p.unit()
	return "<channel type='pipe'>" +
		in + "<source path='" + escape(src) + "'/>" +
		in + "<target type='virtio' name='" + name + "'/>" +
		in + "<address type='virtio-serial' controller='" + strconv.Itoa(a.ctl) + "' bus='0' port='" + strconv.Itoa(a.port) + "'/>" +
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
