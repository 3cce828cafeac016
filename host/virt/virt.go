// Package virt sets a libvirt domain up for vtrace and takes it down again:
// it reads the domain's persistent (inactive) XML over go-libvirt, patches it
// with host/domxml, redefines it, and makes or removes the channel FIFOs
// with host/fifo.
//
// Lifecycle: Connect returns a *Conn that the caller closes. Setup and
// Teardown check the domain name before any libvirt call or file change.
package virt

import (
	"errors"
	"fmt"
	"net/url"
	"os"
	"strings"
	"time"

	"github.com/digitalocean/go-libvirt"
	"github.com/digitalocean/go-libvirt/socket/dialers"
)

// DefaultURI is the connection used when neither --connect nor
// $LIBVIRT_DEFAULT_URI says otherwise.
const DefaultURI = "qemu:///system"

// URI returns uri, else $LIBVIRT_DEFAULT_URI, else DefaultURI.
func URI(uri string) string {
	if uri != "" {
		return uri
	}
	if env := os.Getenv("LIBVIRT_DEFAULT_URI"); env != "" {
		return env
	}
	return DefaultURI
}

// Conn is a connection to a libvirt daemon.
type Conn struct {
	l      *libvirt.Libvirt
	uri    string
	remote string // the daemon's host when reached over the network, "" for a local socket
}

// localTimeout bounds the dial of a local socket, so a missing daemon is
// reported at once rather than after go-libvirt's 15 s default.
const localTimeout = 5 * time.Second

// Connect opens a connection to uri (see URI for the default): a local
// socket for qemu:///system and qemu:///session (?socket=PATH overrides
// the socket), and the remote transports go-libvirt dials itself
// (qemu+ssh://, qemu+libssh://, qemu+tcp://, qemu+tls://).
func Connect(uri string) (*Conn, error) {
	uri = URI(uri)
	u, err := url.Parse(uri)
	if err != nil {
		return nil, fmt.Errorf("parse libvirt URI %q: %w", uri, err)
	}
	var l *libvirt.Libvirt
	if isLocal(u) {
		opts := []dialers.LocalOption{dialers.WithLocalTimeout(localTimeout)}
		if s := u.Query().Get("socket"); s != "" {
			opts = append(opts, dialers.WithSocket(s))
		}
		l = libvirt.NewWithDialer(dialers.NewLocal(opts...))
		err = l.ConnectToURI(libvirt.RemoteURI(u))
	} else {
		l, err = libvirt.ConnectToURI(u)
	}
	if err != nil {
		return nil, fmt.Errorf("connect to libvirt at %s: %w%s", uri, err, connectHint(u))
	}
	c := &Conn{l: l, uri: uri}
	if !isLocal(u) {
		c.remote = u.Hostname()
		if c.remote == "" {
			c.remote = "localhost"
		}
	}
	return c, nil
}

// connectHint says what usually makes a connection to u fail.
func connectHint(u *url.URL) string {
	switch {
	case isLocal(u):
		return " (is libvirtd running? start it as the system does: systemctl start libvirtd, or virtlogd -d; libvirtd -d)"
	case strings.HasSuffix(u.Scheme, "+tcp"):
		return " (does libvirtd listen on TCP? it needs listen_tcp = 1 in libvirtd.conf and --listen)"
	case strings.HasSuffix(u.Scheme, "+ssh"):
		return " (qemu+ssh uses ~/.ssh/known_hosts and ~/.ssh keys: ?keyfile=PATH, ?no_verify=1," +
			" or qemu+libssh://...?known_hosts=PATH)"
	}
	return ""
}

// isLocal reports whether u names the local daemon's unix socket.
func isLocal(u *url.URL) bool {
	return u.Host == "" && (u.Scheme == "qemu" || u.Scheme == "qemu+unix" || u.Scheme == "test+unix")
}

// URI returns the URI the connection was made to.
func (c *Conn) URI() string { return c.uri }

// Remote returns the host of a daemon reached over the network (qemu+ssh,
// qemu+tcp, ...), whose domains run there and open their FIFOs there, or
// "" for the local socket. An address of this machine (127.0.0.1) still
// counts as remote: nothing in the URI proves the daemon is ours.
func (c *Conn) Remote() string { return c.remote }

// Libvirt returns the underlying client, for calls this package does not wrap.
func (c *Conn) Libvirt() *libvirt.Libvirt { return c.l }

// Close ends the connection.
func (c *Conn) Close() error {
	if err := c.l.Disconnect(); err != nil {
		return fmt.Errorf("disconnect from libvirt at %s: %w", c.uri, err)
	}
	return nil
}

// ErrNoDomain is returned (wrapped) when the domain is not defined.
var ErrNoDomain = errors.New("no such domain")

// lookup finds a domain by name.
func (c *Conn) lookup(name string) (libvirt.Domain, error) {
	d, err := c.l.DomainLookupByName(name)
	if libvirt.IsNotFound(err) {
		return d, fmt.Errorf("look up domain %q at %s: %w: virsh -c '%s' list --all lists its domains (a domain of qemu:///session is not in qemu:///system: --connect)",
			name, c.uri, ErrNoDomain, c.uri)
	}
	if err != nil {
		return d, fmt.Errorf("look up domain %q: %w", name, err)
	}
	return d, nil
}

// InactiveXML returns the persistent definition of domain name: the XML a
// redefinition must start from (it carries the UUID).
func (c *Conn) InactiveXML(name string) ([]byte, error) {
	d, err := c.lookup(name)
	if err != nil {
		return nil, err
	}
	x, err := c.l.DomainGetXMLDesc(d, libvirt.DomainXMLInactive)
	if err != nil {
		return nil, fmt.Errorf("read the XML of domain %q: %w", name, err)
	}
	return []byte(x), nil
}

// Define (re)defines a domain from its XML.
func (c *Conn) Define(name string, xml []byte) error {
	if _, err := c.l.DomainDefineXML(string(xml)); err != nil {
		return fmt.Errorf("redefine domain %q: %w", name, err)
	}
	return nil
}

// Active reports whether domain name is running (or paused).
func (c *Conn) Active(name string) (bool, error) {
	d, err := c.lookup(name)
	if err != nil {
		return false, err
	}
	a, err := c.l.DomainIsActive(d)
	if err != nil {
		return false, fmt.Errorf("ask whether domain %q runs: %w", name, err)
	}
	return a != 0, nil
}
