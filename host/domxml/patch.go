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
