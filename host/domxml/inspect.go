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
