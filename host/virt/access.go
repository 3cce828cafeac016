package virt

import (
	"encoding/xml"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/user"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
)

// qemuAccess is what setup knows about how libvirt runs a domain's qemu,
// from the daemon's capabilities and the domain's XML: the security drivers
// (libvirt's secmodels: "dac", "apparmor", "selinux", "none") and the user
// and groups of its DAC label.
type qemuAccess struct {
	models  []string
	dac     bool  // a DAC label was found and is numeric or resolvable
	uid     int   // qemu's user
	groups  []int // qemu's group first, then its user's other groups on this host
	relabel bool  // libvirt's DAC driver gives the channel sources to qemu's user while it runs
}

// capsXML is the part of libvirt's capabilities XML read here.
type capsXML struct {
	SecModels []struct {
		Model      string `xml:"model"`
		BaseLabels []struct {
			Type  string `xml:"type,attr"`
			Label string `xml:",chardata"`
		} `xml:"baselabel"`
	} `xml:"host>secmodel"`
}

// domainSecXML is the part of a domain's XML read here.
type domainSecXML struct {
	Type      string `xml:"type,attr"`
	SecLabels []struct {
		Type    string `xml:"type,attr"`
		Model   string `xml:"model,attr"`
		Relabel string `xml:"relabel,attr"`
		Label   string `xml:"label"`
	} `xml:"seclabel"`
}

// access works out qemuAccess for a domain whose XML is doc: the DAC label
// is the domain's own <seclabel model='dac'> label when it has one, else the
// host's <baselabel> for the domain's type (qemu, kvm) in the capabilities.
func (c *Conn) access(doc []byte) (qemuAccess, error) {
	caps, err := c.l.ConnectGetCapabilities()
	if err != nil {
		return qemuAccess{}, fmt.Errorf("read libvirt's capabilities: %w", err)
	}
	return parseAccess([]byte(caps), doc)
}

func parseAccess(caps, doc []byte) (qemuAccess, error) {
	var a qemuAccess
	var cx capsXML
	if err := xml.Unmarshal(caps, &cx); err != nil {
		return a, fmt.Errorf("parse libvirt's capabilities: %w", err)
	}
	var dx domainSecXML
	if err := xml.Unmarshal(doc, &dx); err != nil {
		return a, fmt.Errorf("parse the domain XML: %w", err)
	}
	label, hasDAC := "", false
	for _, m := range cx.SecModels {
		a.models = append(a.models, m.Model)
		if m.Model != "dac" {
			continue
		}
		hasDAC = true
		for _, b := range m.BaseLabels {
			if b.Type == dx.Type {
				label = strings.TrimSpace(b.Label)
			}
		}
	}
	a.relabel = hasDAC
	for _, s := range dx.SecLabels {
		switch {
		case s.Type == "none" && s.Model == "":
			a.relabel = false
		case s.Model == "dac":
			if s.Relabel == "no" || s.Type == "none" {
				a.relabel = false
			}
			if s.Label != "" {
				label = strings.TrimSpace(s.Label)
			}
		}
	}
	if !hasDAC || label == "" {
		return a, nil
	}
	uid, gid, err := parseDACLabel(label)
	if err != nil {
		return a, nil // a label this host cannot resolve: no checks
	}
	a.dac, a.uid, a.groups = true, uid, []int{gid}
	if u, err := user.LookupId(strconv.Itoa(uid)); err == nil {
		if ids, err := u.GroupIds(); err == nil {
			for _, s := range ids {
				if g, err := strconv.Atoi(s); err == nil && !slices.Contains(a.groups, g) {
					a.groups = append(a.groups, g)
				}
			}
		}
	}
	return a, nil
}

// parseDACLabel reads libvirt's DAC label "USER:GROUP", each a name or a
// number written +N.
func parseDACLabel(label string) (uid, gid int, err error) {
	u, g, ok := strings.Cut(label, ":")
	if !ok {
		return 0, 0, fmt.Errorf("DAC label %q: no ':'", label)
	}
	id := func(s string, lookup func(string) (string, error)) (int, error) {
		if n, ok := strings.CutPrefix(s, "+"); ok {
			return strconv.Atoi(n)
		}
		v, err := lookup(s)
		if err != nil {
			return 0, err
		}
		return strconv.Atoi(v)
	}
	if uid, err = id(u, func(s string) (string, error) {
		x, err := user.Lookup(s)
		if err != nil {
			return "", err
		}
		return x.Uid, nil
	}); err != nil {
		return 0, 0, err
	}
	gid, err = id(g, func(s string) (string, error) {
		x, err := user.LookupGroup(s)
		if err != nil {
			return "", err
		}
		return x.Gid, nil
	})
	return uid, gid, err
}

// apparmorRefused lists the path prefixes under which libvirt's
// virt-aa-helper refuses to write a read-write rule into a domain's AppArmor
// profile (its valid_path(), libvirt 9.0): a pipe channel's PATH.in and
// PATH.out there make the domain fail to start. Anywhere else it grants
// exactly those two files.
var apparmorRefused = []string{
	"/bin/", "/etc/", "/lib", "/lost+found/", "/proc/", "/sbin/", "/selinux/", "/sys/",
	"/usr/bin/", "/usr/lib", "/usr/sbin/", "/usr/share/", "/usr/local/bin/", "/usr/local/etc/",
	"/usr/local/lib", "/usr/local/sbin/",
	// read-only there, not read-write
	"/boot/", "/vmlinuz", "/initrd",
}

// apparmorWarning says why virt-aa-helper would refuse FIFOs in dir (the
// path as the kernel resolves it), or "" when it would grant them.
func apparmorWarning(dir string) string {
	real := resolve(dir)
	for _, p := range apparmorRefused {
		if strings.HasPrefix(real+"/", p) {
			return fmt.Sprintf("libvirt confines qemu with AppArmor, and its virt-aa-helper grants a pipe channel's PATH.in and PATH.out "+
				"anywhere but under %s: the FIFOs in %s would be refused and the domain would not start. "+
				"Choose a --dir elsewhere, such as the default %s", p, real, "/var/lib/vtrace/<domain>")
		}
	}
	if strings.Contains(real, `"`) {
		return fmt.Sprintf("libvirt confines qemu with AppArmor, and its virt-aa-helper refuses paths with a double quote: %s", real)
	}
	return ""
}

// resolve returns dir with the symlinks of its deepest existing ancestor
// resolved, as libvirt's helpers see it.
func resolve(dir string) string {
	rest := ""
	for p := filepath.Clean(dir); ; p = filepath.Dir(p) {
		if r, err := filepath.EvalSymlinks(p); err == nil {
			return filepath.Join(r, rest)
		}
		if p == "/" || p == "." {
			return dir
		}
		rest = filepath.Join(filepath.Base(p), rest)
	}
}

// reachWarning says which directory on the way to dir qemu, running as
// a's DAC user and groups, cannot pass through (search permission), or ""
// when it can reach dir. dir itself is left out: setup gives it the mode
// qemu needs. ACLs on the way are not read.
func reachWarning(dir string, a qemuAccess) string {
	if !a.dac || a.uid == 0 {
		return ""
	}
	real := resolve(dir)
	for p := filepath.Dir(real); ; p = filepath.Dir(p) {
		st, err := os.Stat(p)
		if err == nil {
			if s, ok := st.Sys().(*syscall.Stat_t); ok && !canSearch(st.Mode(), int(s.Uid), int(s.Gid), a) {
				return fmt.Sprintf("qemu runs as uid %d gid %d (libvirt's DAC label) and cannot pass through %s (mode %04o, owner %d:%d): "+
					"the domain would not start (qemu: Permission denied on the channel FIFOs). "+
					"Let it pass (chmod o+x %s) or choose a --dir that qemu can reach",
					a.uid, a.groups[0], p, st.Mode().Perm(), s.Uid, s.Gid, p)
			}
		} else if !errors.Is(err, fs.ErrNotExist) {
			return ""
		}
		if p == "/" {
			return ""
		}
	}
}

// canSearch applies the kernel's owner, group, other rule for the search
// (x) bit of a directory.
func canSearch(m fs.FileMode, uid, gid int, a qemuAccess) bool {
	switch {
	case uid == a.uid:
		return m&0o100 != 0
	case slices.Contains(a.groups, gid):
		return m&0o010 != 0
	}
	return m&0o001 != 0
}

// accessWarnings is what setup warns of for FIFOs in dir with group gid
// (-1: none given): a directory qemu cannot pass, an AppArmor refusal, and a
// domain whose FIFOs libvirt does not hand to qemu (no DAC relabelling)
// while qemu is not in their group.
func accessWarnings(dir string, gid int, a qemuAccess) []string {
	var w []string
	if s := reachWarning(dir, a); s != "" {
		w = append(w, s)
	}
	if slices.Contains(a.models, "apparmor") {
		if s := apparmorWarning(dir); s != "" {
			w = append(w, s)
		}
	}
	if a.dac && !a.relabel && a.uid != 0 && !slices.Contains(a.groups, gid) {
		w = append(w, fmt.Sprintf("libvirt does not change the owner of this domain's files (DAC relabel off), and qemu's user %d "+
			"is not in the FIFOs' group: give --group one of qemu's groups (%d)", a.uid, a.groups[0]))
	}
	return w
}
