// Package domxml adds vtrace's trace channels to a libvirt domain XML
// document and removes them again. Patch and Unpatch are pure functions from
// bytes to bytes: they find elements with encoding/xml's token offsets and
// edit only the text of what they add, fix or remove, so everything else
// (comments, namespaced elements such as <qemu:commandline>, attribute
// quoting, indentation) stays byte for byte as it was.
//
// The channels are those of the kernel's virtio-trace README: a pipe channel
// with a virtio target named agent-ctl-path and one named trace-path-cpuN per
// vCPU, on the virtio-serial controller of index 0, whose source is
// DIR/NAME (qemu opens DIR/NAME.in and DIR/NAME.out).
package domxml

import (
	"errors"
	"fmt"
	"path"
	"slices"
	"strconv"
	"strings"

	"github.com/vtrace/vtrace/proto/channel"
	"github.com/vtrace/vtrace/proto/tracefs"
)

// Spec says which channels a domain should have.
type Spec struct {
	Dir  string // the domain's FIFO directory, absolute
	CPUs int    // trace ports wanted; 0 reads the domain's vCPU count
}

// ControllerAlias marks a virtio-serial controller that Patch added, so that
// Unpatch can take it away again (libvirt keeps "ua-" user aliases).
const ControllerAlias = "ua-vtrace-serial"

// maxDefaultPort is the highest port of a virtio-serial controller without a
// ports attribute (qemu's default max_ports is 31). Port 0 is reserved by
// qemu for virtconsole, so channels use 1 and up.
const maxDefaultPort = 30

// maxPorts is the most ports qemu accepts on one virtio-serial controller.
const maxPorts = 511

// Channel is one of our channels as found in a document.
type Channel struct {
	Name string // agent-ctl-path or trace-path-cpuN
	Type string // the channel's type attribute ("pipe" when set up by Patch)
	Path string // the source path
	Port int    // the virtio-serial port, -1 when the element has no address
}

// Info is what Inspect reads from a domain document.
type Info struct {
	Name     string
	UUID     string
	CPUs     int       // the vCPU count at boot: <vcpu current=...>, else its text; 0 if absent or unreadable
	Channels []Channel // our channels, in document order
}

// Inspect reads the facts Patch and the host commands need from doc.
func Inspect(doc []byte) (Info, error) {
	root, err := parseDomain(doc)
	if err != nil {
		return Info{}, err
	}
	var info Info
	if n := root.child("name"); n != nil {
		info.Name = strings.TrimSpace(n.text.String())
	}
	if n := root.child("uuid"); n != nil {
		info.UUID = strings.TrimSpace(n.text.String())
	}
	info.CPUs, _ = vcpus(root) // unreadable counts as absent; Patch is the strict one
	if dev := root.child("devices"); dev != nil {
		for _, c := range dev.all("channel") {
			if name, ok := ourName(c); ok {
				info.Channels = append(info.Channels, channelOf(c, name))
			}
		}
	}
	return info, nil
}

// ChannelNames returns the names of the channels of info, without duplicates.
func (info Info) ChannelNames() []string {
	var names []string
	for _, c := range info.Channels {
		if !slices.Contains(names, c.Name) {
			names = append(names, c.Name)
		}
	}
	return names
}

// FIFODir returns the directory the channels' FIFOs live in, as their
// source paths say: the one absolute directory all of them name, each path
// ending in its channel's name (as Patch writes them). ok is false when there
// are no channels, or when they do not agree on such a directory.
func (info Info) FIFODir() (dir string, ok bool) {
	for _, c := range info.Channels {
		p := path.Clean(c.Path)
		if c.Path == "" || !path.IsAbs(p) || path.Base(p) != c.Name {
			return "", false
		}
		d := path.Dir(p)
		if dir != "" && d != dir {
			return "", false
		}
		dir = d
	}
	return dir, dir != ""
}

func parseDomain(doc []byte) (*node, error) {
	root, err := parse(doc)
	if err != nil {
		return nil, err
	}
	if root.name != "domain" {
		return nil, fmt.Errorf("parse domain XML: root element is <%s>, not <domain>", root.name)
	}
	return root, nil
}

func vcpus(root *node) (int, error) {
	n := root.child("vcpu")
	if n == nil {
		return 0, nil
	}
	s, what := n.attrs["current"], "current attribute"
	if s == "" {
		s, what = strings.TrimSpace(n.text.String()), "count"
	}
	v, err := strconv.Atoi(s)
	if err != nil || v < 1 || v > tracefs.MaxCPU+1 {
		return 0, fmt.Errorf("read <vcpu> %s %q: not a count from 1 to %d", what, s, tracefs.MaxCPU+1)
	}
	return v, nil
}

// ourName returns the target name of a channel element when it is one of
// ours (a virtio target named agent-ctl-path or trace-path-cpuN).
func ourName(c *node) (string, bool) {
	t := c.child("target")
	if t == nil || t.attrs["type"] != "virtio" {
		return "", false
	}
	name := t.attrs["name"]
	if name == channel.Ctl {
		return name, true
	}
	if _, ok := channel.ParseData(name); ok {
		return name, true
	}
	return "", false
}

func channelOf(c *node, name string) Channel {
	ch := Channel{Name: name, Type: c.attrs["type"], Port: -1}
	if s := c.child("source"); s != nil {
		ch.Path = s.attrs["path"]
	}
	if a := c.child("address"); a != nil {
		if p, ok := serialPort(a); ok {
			ch.Port = p
		}
	}
	return ch
}

// serialPort returns the port of an address element on bus 0 of the
// virtio-serial controller 0.
func serialPort(a *node) (int, bool) {
	if a.attrs["type"] != "virtio-serial" {
		return 0, false
	}
	for _, k := range []string{"controller", "bus"} {
		if v, ok := a.attrs[k]; ok {
			if n, err := parseUint(v); err != nil || n != 0 {
				return 0, false
			}
		}
	}
	p, err := parseUint(a.attrs["port"])
	if err != nil {
		return 0, false
	}
	return p, true
}

// parseUint reads a libvirt unsigned attribute (decimal or 0x hex).
func parseUint(s string) (int, error) {
	s = strings.TrimSpace(s)
	base := 10
	if h, ok := strings.CutPrefix(strings.ToLower(s), "0x"); ok {
		s, base = h, 16
	}
	v, err := strconv.ParseUint(s, base, 31)
	return int(v), err
}

// Patch returns doc with the channels of spec: it adds a virtio-serial
// controller of index 0 when there is none, adds each missing channel on a
// free port, rewrites one of ours whose type, source, target or address is
// not what it should be, and removes duplicates and trace ports beyond the
// vCPU count. changed is false when doc already was as wanted; then out is
// doc itself.
func Patch(doc []byte, spec Spec) (out []byte, changed bool, err error) {
	root, err := parseDomain(doc)
	if err != nil {
		return nil, false, err
	}
	if spec.Dir == "" || !path.IsAbs(spec.Dir) {
		return nil, false, fmt.Errorf("patch domain XML: FIFO directory %q is not an absolute path", spec.Dir)
	}
	cpus := spec.CPUs
	if cpus == 0 {
		if cpus, err = vcpus(root); err != nil {
			return nil, false, err
		}
		if cpus == 0 {
			return nil, false, errors.New("patch domain XML: no <vcpu> element: give the vCPU count")
		}
	}
	if cpus < 0 || cpus > tracefs.MaxCPU+1 {
		return nil, false, fmt.Errorf("patch domain XML: vCPU count %d out of range", cpus)
	}
	if cpus+1 > maxPorts-1 {
		return nil, false, fmt.Errorf("patch domain XML: %d vCPUs need %d ports, more than a virtio-serial controller has (%d): use --cpus", cpus, cpus+1, maxPorts-1)
	}
	want := channel.Names(cpus)
	p := &patcher{doc: doc, root: root, used: map[int]bool{0: true}}
	p.dev = root.child("devices")
	p.indents()
	p.ctl = p.hasController()

	// Ports taken by anything that stays: every virtio-serial address on
	// controller 0 that is not on a channel of ours.
	ours := map[*node]string{}
	if p.dev != nil {
		for _, c := range p.dev.all("channel") {
			if name, ok := ourName(c); ok {
				ours[c] = name
			}
		}
	}
	root.walk(func(n *node) {
		if n.name != "address" || n.parent == nil {
			return
		}
		if _, mine := ours[n.parent]; mine {
			return
		}
		if port, ok := serialPort(n); ok {
			p.used[port] = true
		}
	})

	// Decide the fate of each existing channel of ours.
	have := map[string]bool{}
	var keep []*node
	for _, c := range p.dev.allOrNil("channel") {
		name, ok := ours[c]
		if !ok {
			continue
		}
		if !slices.Contains(want, name) || have[name] {
			p.edits = append(p.edits, removal(doc, c))
			continue
		}
		have[name] = true
		keep = append(keep, c)
	}
	for _, c := range keep {
		name := ours[c]
		ch := channelOf(c, name)
		src := path.Join(spec.Dir, name)
		good := ch.Type == "pipe" && ch.Path == src && c.child("source") != nil && len(c.all("source")) == 1
		port := ch.Port
		if port < 1 || p.used[port] || !p.portOK(port) {
			good, port = false, -1
		}
		if port >= 0 {
			p.used[port] = true
		}
		if good {
			continue
		}
		if port < 0 {
			if port, err = p.freePort(); err != nil {
				return nil, false, err
			}
		}
		p.edits = append(p.edits, edit{c.start, c.end, p.channel(name, src, port, p.childIndent)})
	}

	// Add what is missing.
	var add []string
	for _, name := range want {
		if !have[name] {
			add = append(add, name)
		}
	}
	if !p.ctl && len(want) > 0 {
		p.addController(len(add))
	}
	var text strings.Builder
	for _, name := range add {
		port, err := p.freePort()
		if err != nil {
			return nil, false, err
		}
		text.WriteString(p.nl + p.childIndent + p.channel(name, path.Join(spec.Dir, name), port, p.childIndent))
	}
	if text.Len() > 0 {
		p.insert(text.String(), "channel")
	}
	p.finish()
	if len(p.edits) == 0 {
		return doc, false, nil
	}
	out, err = apply(doc, p.edits)
	if err != nil {
		return nil, false, err
	}
	return out, true, nil
}

// Unpatch removes every channel of ours, and the controller Patch added
// (recognized by ControllerAlias) when nothing else uses virtio-serial.
func Unpatch(doc []byte) (out []byte, changed bool, err error) {
	root, err := parseDomain(doc)
	if err != nil {
		return nil, false, err
	}
	dev := root.child("devices")
	if dev == nil {
		return doc, false, nil
	}
	var edits []edit
	removed := map[*node]bool{}
	for _, c := range dev.all("channel") {
		if _, ok := ourName(c); ok {
			edits = append(edits, removal(doc, c))
			removed[c] = true
		}
	}
	var ctl *node
	for _, c := range dev.all("controller") {
		if isOurController(c) {
			ctl = c
		}
	}
	if ctl != nil && !serialInUse(dev, removed) {
		edits = append(edits, removal(doc, ctl))
	}
	if len(edits) == 0 {
		return doc, false, nil
	}
	out, err = apply(doc, edits)
	if err != nil {
		return nil, false, err
	}
	return out, true, nil
}

func isOurController(c *node) bool {
	a := c.child("alias")
	return c.attrs["type"] == "virtio-serial" && a != nil && a.attrs["name"] == ControllerAlias
}

// serialInUse reports whether a device that stays (not in removed) sits on a
// virtio-serial bus: a virtio channel or console, or a virtio-serial address.
func serialInUse(dev *node, removed map[*node]bool) bool {
	inUse := false
	for _, d := range dev.children {
		if removed[d] || d.name == "controller" {
			continue
		}
		if t := d.child("target"); (d.name == "channel" || d.name == "console") && t != nil && t.attrs["type"] == "virtio" {
			inUse = true
		}
		d.walk(func(n *node) {
			if n.name == "address" && n.attrs["type"] == "virtio-serial" {
				inUse = true
			}
		})
	}
	return inUse
}

func (n *node) allOrNil(name string) []*node {
	if n == nil {
		return nil
	}
	return n.all(name)
}

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
