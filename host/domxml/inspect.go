package domxml

import (
	"fmt"
	"path"
	"slices"
	"strconv"
	"strings"

	"github.com/vtrace/vtrace/proto/channel"
	"github.com/vtrace/vtrace/proto/tracefs"
)

// Channel is one of our channels as found in a document.
type Channel struct {
	Name string // agent-ctl-path or trace-path-cpuN
	Type string // the channel's type attribute ("pipe" when set up by Patch)
	Path string // the source path
	// Controller and Port are its virtio-serial address (bus 0); Port is
	// -1 when the element has no such address.
	Controller int
	Port       int
}

// Info is what Inspect reads from a domain document.
type Info struct {
	Name string
	UUID string
	// CPUs is the maximum vCPU count, the text of <vcpu> (its current=
	// attribute only says how many are online at boot); 0 if absent or
	// unreadable.
	CPUs     int
	Channels []Channel // our channels, in document order
	// SerialControllers counts the virtio-serial controllers: a running
	// domain without one cannot take channels (libvirt does not hot-plug
	// the controller).
	SerialControllers int
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
		for _, c := range dev.all("controller") {
			if c.attrs["type"] == "virtio-serial" {
				info.SerialControllers++
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

// vcpus is the domain's maximum vCPU count, <vcpu>N</vcpu>: the vCPUs
// that are not online at boot (current='M') may come online later, and
// each needs its trace port from boot on. A current attribute is checked
// but not used.
func vcpus(root *node) (int, error) {
	n := root.child("vcpu")
	if n == nil {
		return 0, nil
	}
	s := strings.TrimSpace(n.text.String())
	v, err := strconv.Atoi(s)
	if err != nil || v < 1 || v > tracefs.MaxCPU+1 {
		return 0, fmt.Errorf("read <vcpu> count %q: not a count from 1 to %d", s, tracefs.MaxCPU+1)
	}
	if c, ok := n.attrs["current"]; ok {
		if cur, err := strconv.Atoi(strings.TrimSpace(c)); err != nil || cur < 1 || cur > v {
			return 0, fmt.Errorf("read <vcpu> current attribute %q: not a count from 1 to %d", c, v)
		}
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
		if at, ok := serialAddr(a); ok {
			ch.Controller, ch.Port = at.ctl, at.port
		}
	}
	return ch
}

// addr is a virtio-serial address: a controller's index and a port on
// its bus 0.
type addr struct{ ctl, port int }

// serialAddr returns the controller and port of a virtio-serial address
// element on bus 0 (a virtio-serial controller has one bus; a missing
// controller or bus attribute is 0).
func serialAddr(a *node) (addr, bool) {
	if a.attrs["type"] != "virtio-serial" {
		return addr{}, false
	}
	var at addr
	if v, ok := a.attrs["controller"]; ok {
		n, err := parseUint(v)
		if err != nil {
			return addr{}, false
		}
		at.ctl = n
	}
	if v, ok := a.attrs["bus"]; ok {
		if n, err := parseUint(v); err != nil || n != 0 {
			return addr{}, false
		}
	}
	p, err := parseUint(a.attrs["port"])
	if err != nil {
		return addr{}, false
	}
	at.port = p
	return at, true
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
