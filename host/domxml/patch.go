// Package domxml adds vtrace's trace channels to a libvirt domain XML
// document and removes them again. Patch and Unpatch are pure functions from
// bytes to bytes: they find elements with encoding/xml's token offsets and
// edit only the text of what they add, fix or remove, so everything else
// (comments, namespaced elements such as <qemu:commandline>, attribute
// quoting, indentation) stays byte for byte as it was.
//
// The channels are those of the kernel's virtio-trace README: a pipe channel
// with a virtio target named agent-ctl-path and one named trace-path-cpuN per
// vCPU (up to the domain's maximum vCPU count), on virtio-serial controllers
// (index 0 first, more when its ports run out), whose source is DIR/NAME
// (qemu opens DIR/NAME.in and DIR/NAME.out).
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
	Dir string // the domain's FIFO directory, absolute
	// CPUs is the number of trace ports wanted; 0 reads the domain's
	// maximum vCPU count (<vcpu>N</vcpu>, whatever its current= says:
	// a vCPU brought online later needs its port from boot on, since
	// pipe channels cannot be added to a running domain).
	CPUs int
}

// ControllerAlias marks a virtio-serial controller that Patch added, so that
// Unpatch can take it away again (libvirt keeps "ua-" user aliases). The
// first one Patch adds has this alias, the next ones the alias followed by
// their index ("ua-vtrace-serial1").
const ControllerAlias = "ua-vtrace-serial"

// defaultPorts is the number of ports of a virtio-serial controller
// without a ports attribute (qemu's default max_ports). Port 0 is
// reserved by qemu for virtconsole, so channels use 1 and up.
const defaultPorts = 31

// maxPorts is the most ports qemu gives one virtio-serial controller
// (max_ports: two virtqueues each, within VIRTIO_QUEUE_MAX of 1024).
const maxPorts = 511

// maxXMLPorts is the most ports Patch uses on one controller: libvirt's
// domain schema (domaincommon.rng, virtioserialPort) takes a port number
// of one or two digits, and `virsh edit` checks a document against it, so
// channels use ports 1 to 99, and a controller Patch adds or grows has at
// most 100. Its index is two digits too: 100 controllers hold 9900
// channels, more than the largest CPU number allows.
const maxXMLPorts = 100

// Patch returns doc with the channels of spec: it adds each missing
// channel on a free port, rewrites one of ours whose type, source, target
// or address is not what it should be, and removes duplicates and trace
// ports beyond the vCPU count. Channels that stay keep their addresses.
// Free ports are taken on the virtio-serial controllers there are, in
// index order; when they run out, a controller Patch added gets more
// ports (its ports attribute, up to 100), then Patch adds controllers, so
// any vCPU count fits. A controller Patch added that nothing uses any more
// (fewer vCPUs) goes, except the one of index 0. changed is false when doc
// already was as wanted; then out is doc itself.
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
	want := channel.Names(cpus)
	p := &patcher{doc: doc, root: root, used: map[addr]bool{}}
	p.dev = root.child("devices")
	p.indents()
	p.controllers()

	// Ports taken by anything that stays: every virtio-serial address
	// that is not on a channel of ours.
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
		if a, ok := serialAddr(n); ok {
			p.used[a] = true
		}
	})

	// Decide the fate of each existing channel of ours: channels in the
	// way go, good ones stay as they are, the others are rewritten.
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
	type job struct {
		c    *node // the channel to rewrite; nil for a new one
		name string
		at   addr
	}
	var jobs []*job
	for _, c := range keep {
		name := ours[c]
		ch := channelOf(c, name)
		src := path.Join(spec.Dir, name)
		good := ch.Type == "pipe" && ch.Path == src && c.child("source") != nil && len(c.all("source")) == 1
		a := addr{ch.Controller, ch.Port}
		if ch.Port < 1 || p.used[a] || !p.portOK(a) {
			good, a = false, addr{-1, -1}
		}
		if a.port >= 0 {
			p.used[a] = true
		}
		if !good {
			jobs = append(jobs, &job{c: c, name: name, at: a})
		}
	}
	for _, name := range want {
		if !have[name] {
			jobs = append(jobs, &job{name: name, at: addr{-1, -1}})
		}
	}
	var homeless []*job
	for _, j := range jobs {
		if j.at.port < 0 {
			homeless = append(homeless, j)
		}
	}
	free := p.allocate(len(homeless))
	for i, j := range homeless {
		j.at = free[i]
	}
	p.dropUnused()
	p.addControllers()
	var text strings.Builder
	for _, j := range jobs {
		src := path.Join(spec.Dir, j.name)
		if j.c != nil {
			p.edits = append(p.edits, edit{j.c.start, j.c.end, p.channel(j.name, src, j.at, p.childIndent)})
			continue
		}
		text.WriteString(p.nl + p.childIndent + p.channel(j.name, src, j.at, p.childIndent))
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
	for _, c := range dev.all("controller") {
		if isOurController(c) && !serialInUse(dev, removed, controllerIndex(c)) {
			edits = append(edits, removal(doc, c))
		}
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
	if c.attrs["type"] != "virtio-serial" || a == nil {
		return false
	}
	name, ok := strings.CutPrefix(a.attrs["name"], ControllerAlias)
	if !ok {
		return false
	}
	_, err := strconv.Atoi(name)
	return name == "" || err == nil && name[0] != '0' && name[0] != '-' && name[0] != '+'
}

// controllerIndex is a controller's index attribute (0 when absent or
// unreadable, as libvirt gives the first one).
func controllerIndex(c *node) int {
	n, err := parseUint(c.attrs["index"])
	if err != nil {
		return 0
	}
	return n
}

// serialInUse reports whether a device that stays (not in removed) sits on
// virtio-serial controller index: has a virtio-serial address on it, or,
// for index 0, is a virtio channel or console (libvirt gives one without
// an address a port there).
func serialInUse(dev *node, removed map[*node]bool, index int) bool {
	inUse := false
	for _, d := range dev.children {
		if removed[d] || d.name == "controller" {
			continue
		}
		if t := d.child("target"); index == 0 && (d.name == "channel" || d.name == "console") && t != nil && t.attrs["type"] == "virtio" {
			inUse = true
		}
		d.walk(func(n *node) {
			if a, ok := serialAddr(n); ok && n.name == "address" && a.ctl == index {
				inUse = true
			}
		})
	}
	return inUse
}
