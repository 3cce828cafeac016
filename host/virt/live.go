package virt

import (
	"errors"
	"fmt"
	"io"
	"path/filepath"
	"slices"
	"strings"

	"github.com/digitalocean/go-libvirt"

	"github.com/vtrace/vtrace/host/domxml"
	"github.com/vtrace/vtrace/host/fifo"
	"github.com/vtrace/vtrace/proto/channel"
)

// LiveResult reports what SetupLive or TeardownLive did (or, with DryRun,
// would do) to a running domain.
type LiveResult struct {
	Domain   string
	URI      string
	Dir      string
	Channels []string // the channels the running domain has afterwards (SetupLive)
	Attached []string // channels hot-plugged into the running domain
	Detached []string // channels hot-unplugged from it
	Diff     string   // the live XML diff, "" when unchanged
	// Config says whether the persistent XML was asked to follow
	// (--config); ConfigDiff is its diff, "" when unchanged.
	Config     bool
	ConfigDiff string
	Sockets    fifo.Report
	DryRun     bool
	// SocketHost is set when the sockets were left alone because the
	// domain runs on that (remote) host.
	SocketHost string
	Warnings   []string
}

// ErrNotRunning is returned (wrapped) by SetupLive and TeardownLive for a
// domain that does not run.
var ErrNotRunning = errors.New("domain is not running")

// SetupLive hot-plugs the trace channels into the running domain as
// unix-socket channels (libvirt cannot hot-plug pipe channels): one per
// name of channel.Names(CPUs), whose socket DIR/NAME libvirt creates and
// qemu listens on, on free ports of the domain's virtio-serial
// controllers (libvirt cannot hot-plug a controller: a domain without one
// is refused, with what to do). Channels of ours already there at the
// right path stay; others of ours (another path, trace ports beyond the
// count) are unplugged. The persistent XML is left as it is unless
// opts.Config, which makes the same change there, as virsh attach-device
// --live --config does. The sockets get the mode and, with opts.Group, the
// group and ACL entry that FIFOs get. A domain that runs with pipe
// channels of ours is refused: its FIFOs already serve it.
func SetupLive(c *Conn, opts Options) (LiveResult, error) {
	dir, err := Dir(opts)
	if err != nil {
		return LiveResult{}, err
	}
	r := LiveResult{Domain: opts.Domain, URI: c.URI(), Dir: dir, DryRun: opts.DryRun, Config: opts.Config}
	if opts.CPUs < 0 {
		return r, fmt.Errorf("set up domain %q: negative vCPU count %d", opts.Domain, opts.CPUs)
	}
	d, live, before, err := c.liveXML(opts.Domain, "set up")
	if err != nil {
		return r, err
	}
	if before.SerialControllers == 0 {
		return r, fmt.Errorf("set up domain %q live: the running domain has no virtio-serial controller, and libvirt cannot hot-plug one: "+
			"run vtrace host setup %s (without --live) and restart the domain once; later captures need no restart", opts.Domain, opts.Domain)
	}
	cpus := opts.CPUs
	if cpus == 0 {
		if cpus = before.CPUs; cpus == 0 {
			return r, fmt.Errorf("set up domain %q live: no <vcpu> count in its XML: give --cpus", opts.Domain)
		}
	}
	want := channel.Names(cpus)
	r.Channels = want
	paths := map[string]string{}
	for _, n := range want {
		if paths[n], err = fifo.SocketPath(dir, n); err != nil {
			return r, err
		}
	}
	have := map[string]bool{}
	var drop []domxml.Channel
	for _, ch := range before.Channels {
		switch {
		case ch.Type == "pipe":
			return r, fmt.Errorf("set up domain %q live: it runs with pipe channels of vtrace host setup (%s): its FIFOs serve it, nothing to hot-plug",
				opts.Domain, ch.Path)
		case ch.Type == "unix" && ch.Path == paths[ch.Name] && !have[ch.Name]:
			have[ch.Name] = true
		default:
			drop = append(drop, ch)
		}
	}
	var add []string
	for _, n := range want {
		if !have[n] {
			add = append(add, n)
		}
	}

	local := !fifosElsewhere(c, opts)
	if local {
		if r.Sockets, err = fifo.PrepareSockets(dir, want, fifo.Options{Group: opts.Group, DryRun: opts.DryRun}); err != nil {
			return r, err
		}
	} else {
		r.SocketHost = c.Remote()
	}
	for _, ch := range drop {
		if err := c.detach(d, opts, ch, libvirt.DomainDeviceModifyLive); err != nil {
			return r, err
		}
		r.Detached = append(r.Detached, ch.Name)
	}
	for _, n := range add {
		if !opts.DryRun {
			x := domxml.SocketChannel(n, paths[n])
			if err := c.l.DomainAttachDeviceFlags(d, x, uint32(libvirt.DomainDeviceModifyLive)); err != nil {
				return r, fmt.Errorf("hot-plug channel %s into domain %q: %w", n, opts.Domain, err)
			}
		}
		r.Attached = append(r.Attached, n)
	}
	if opts.Config {
		if err := c.configSockets(d, opts, want, paths, &r); err != nil {
			return r, err
		}
	}
	if local {
		var stale []string
		for _, ch := range drop {
			if !slices.Contains(want, ch.Name) && ch.Path == filepath.Join(dir, ch.Name) {
				stale = append(stale, ch.Name)
			}
		}
		if len(stale) > 0 {
			rm, err := fifo.RemoveSockets(dir, stale, fifo.Options{Group: -1, DryRun: opts.DryRun, KeepDir: true})
			r.Sockets.Removed = append(r.Sockets.Removed, rm.Removed...)
			if err != nil {
				return r, err
			}
		}
		if !opts.DryRun {
			adj, err := fifo.AdjustSockets(dir, want, fifo.Options{Group: opts.Group})
			if err != nil {
				return r, err
			}
			r.Sockets.Adjusted = append(r.Sockets.Adjusted, adj.Adjusted...)
			r.Warnings = append(r.Warnings, adj.Notes...)
		}
	}
	r.Diff = c.liveDiff(d, opts.Domain, live)
	return r, nil
}

// TeardownLive hot-unplugs every unix-socket channel of ours from the
// running domain and removes the sockets (and the directory, if nothing
// else is in it). The directory is opts.Dir when set, else the one the
// channels' sockets name, else the default. With opts.Config the trace
// channels go from the persistent XML too (as Teardown takes them away);
// without it that XML stays as it is.
func TeardownLive(c *Conn, opts Options) (LiveResult, error) {
	dir, err := Dir(opts)
	if err != nil {
		return LiveResult{}, err
	}
	r := LiveResult{Domain: opts.Domain, URI: c.URI(), Dir: dir, DryRun: opts.DryRun, Config: opts.Config}
	d, live, before, err := c.liveXML(opts.Domain, "tear down")
	if err != nil {
		return r, err
	}
	var socks []domxml.Channel
	for _, ch := range before.Channels {
		if ch.Type == "unix" {
			socks = append(socks, ch)
		}
	}
	if xmlDir, ok := (domxml.Info{Channels: socks}).FIFODir(); ok && opts.Dir == "" {
		r.Dir = xmlDir
	}
	for _, ch := range socks {
		if err := c.detach(d, opts, ch, libvirt.DomainDeviceModifyLive); err != nil {
			return r, err
		}
		r.Detached = append(r.Detached, ch.Name)
	}
	if opts.Config {
		old, err := c.InactiveXML(opts.Domain)
		if err != nil {
			return r, err
		}
		clean, changed, err := domxml.Unpatch(old)
		if err != nil {
			return r, fmt.Errorf("tear down domain %q: %w", opts.Domain, err)
		}
		if changed {
			r.ConfigDiff = domxml.Diff("inactive XML of "+opts.Domain, "without trace channels", old, clean)
			if !opts.DryRun {
				if err := c.Define(opts.Domain, clean); err != nil {
					return r, err
				}
			}
		}
	}
	if fifosElsewhere(c, opts) {
		r.SocketHost = c.Remote()
	} else {
		names, err := fifo.Names(r.Dir)
		if err != nil {
			return r, err
		}
		for _, ch := range socks {
			if !slices.Contains(names, ch.Name) {
				names = append(names, ch.Name)
			}
		}
		if r.Sockets, err = fifo.RemoveSockets(r.Dir, names, fifo.Options{Group: -1, DryRun: opts.DryRun}); err != nil {
			return r, err
		}
	}
	r.Diff = c.liveDiff(d, opts.Domain, live)
	return r, nil
}

// liveXML looks the domain up and returns its live XML, read, after
// checking that it runs.
func (c *Conn) liveXML(name, what string) (libvirt.Domain, []byte, domxml.Info, error) {
	d, err := c.lookup(name)
	if err != nil {
		return d, nil, domxml.Info{}, err
	}
	active, err := c.l.DomainIsActive(d)
	if err != nil {
		return d, nil, domxml.Info{}, fmt.Errorf("ask whether domain %q runs: %w", name, err)
	}
	if active == 0 {
		return d, nil, domxml.Info{}, fmt.Errorf("%s domain %q live: %w: start it (virsh -c '%s' start %s), or run this without --live "+
			"to give it pipe channels from its next boot", what, name, ErrNotRunning, c.uri, name)
	}
	x, err := c.l.DomainGetXMLDesc(d, 0)
	if err != nil {
		return d, nil, domxml.Info{}, fmt.Errorf("read the live XML of domain %q: %w", name, err)
	}
	info, err := domxml.Inspect([]byte(x))
	if err != nil {
		return d, nil, domxml.Info{}, fmt.Errorf("%s domain %q live: %w", what, name, err)
	}
	return d, []byte(x), info, nil
}

// detach hot-unplugs channel ch (unless a dry run), matched by libvirt on
// its type, source and target.
func (c *Conn) detach(d libvirt.Domain, opts Options, ch domxml.Channel, flags libvirt.DomainDeviceModifyFlags) error {
	if opts.DryRun {
		return nil
	}
	x := domxml.SocketChannel(ch.Name, ch.Path)
	if ch.Type != "unix" {
		x = strings.Replace(strings.Replace(x, "type='unix'", "type='"+ch.Type+"'", 1), "mode='bind' ", "", 1)
	}
	if err := c.l.DomainDetachDeviceFlags(d, x, uint32(flags)); err != nil {
		return fmt.Errorf("hot-unplug channel %s from domain %q: %w", ch.Name, opts.Domain, err)
	}
	return nil
}

// configSockets makes the persistent XML hold the socket channels of
// want (paths), as SetupLive made the live one: it detaches the other
// channels of ours there and attaches the missing ones, with
// DomainDeviceModifyConfig.
func (c *Conn) configSockets(d libvirt.Domain, opts Options, want []string, paths map[string]string, r *LiveResult) error {
	old, err := c.InactiveXML(opts.Domain)
	if err != nil {
		return err
	}
	info, err := domxml.Inspect(old)
	if err != nil {
		return fmt.Errorf("set up domain %q: %w", opts.Domain, err)
	}
	have := map[string]bool{}
	for _, ch := range info.Channels {
		if ch.Type == "unix" && ch.Path == paths[ch.Name] && !have[ch.Name] {
			have[ch.Name] = true
			continue
		}
		if err := c.detach(d, opts, ch, libvirt.DomainDeviceModifyConfig); err != nil {
			return err
		}
	}
	for _, n := range want {
		if have[n] || opts.DryRun {
			continue
		}
		x := domxml.SocketChannel(n, paths[n])
		if err := c.l.DomainAttachDeviceFlags(d, x, uint32(libvirt.DomainDeviceModifyConfig)); err != nil {
			return fmt.Errorf("add channel %s to the persistent XML of domain %q: %w", n, opts.Domain, err)
		}
	}
	if now, err := c.InactiveXML(opts.Domain); err == nil {
		r.ConfigDiff = domxml.Diff("inactive XML of "+opts.Domain, "with socket channels", old, now)
	}
	return nil
}

// liveDiff is the diff from live to the domain's live XML now ("" when
// it cannot be read).
func (c *Conn) liveDiff(d libvirt.Domain, name string, live []byte) string {
	x, err := c.l.DomainGetXMLDesc(d, 0)
	if err != nil {
		return ""
	}
	return domxml.Diff("live XML of "+name, "now", live, []byte(x))
}

// WriteSetup tells a person what SetupLive did.
func (r LiveResult) WriteSetup(w io.Writer) { r.write(w, "setup") }

// WriteTeardown tells a person what TeardownLive did.
func (r LiveResult) WriteTeardown(w io.Writer) { r.write(w, "teardown") }

func (r LiveResult) write(w io.Writer, what string) {
	would := func(done, planned string) string {
		if r.DryRun {
			return planned
		}
		return done
	}
	if r.DryRun {
		fmt.Fprintf(w, "dry run: nothing is changed\n")
	}
	names := func(verb string, ns []string) {
		if len(ns) > 0 {
			fmt.Fprintf(w, "%s: %s\n", verb, strings.Join(ns, " "))
		}
	}
	names(fmt.Sprintf("domain %s: %s (%s)", r.Domain, would("hot-plugged", "would hot-plug"), r.URI), r.Attached)
	names(fmt.Sprintf("domain %s: %s (%s)", r.Domain, would("hot-unplugged", "would hot-unplug"), r.URI), r.Detached)
	if len(r.Attached)+len(r.Detached) == 0 {
		fmt.Fprintf(w, "domain %s: running with the channels as wanted\n", r.Domain)
	}
	io.WriteString(w, r.Diff)
	switch {
	case !r.Config:
		fmt.Fprintf(w, "persistent XML: unchanged (the channels last until the domain stops; --config keeps them)\n")
	case r.ConfigDiff == "":
		fmt.Fprintf(w, "persistent XML: already as wanted\n")
	default:
		fmt.Fprintf(w, "persistent XML: %s\n", would("changed", "would change"))
		io.WriteString(w, r.ConfigDiff)
	}
	listPaths(w, would("created", "would create"), r.Sockets.Created)
	listPaths(w, would("adjusted (mode, group or ACL)", "would adjust (mode, group or ACL)"), r.Sockets.Adjusted)
	listPaths(w, would("removed", "would remove"), r.Sockets.Removed)
	listPaths(w, "left in place (holds other files)", r.Sockets.Left)
	if r.SocketHost != "" {
		fmt.Fprintf(w, "sockets: made by libvirt on %s, where the domain runs, in %s (which must exist there: "+
			"run vtrace host setup --live there, or this command with --local-fifos if %s is this machine); collect there\n",
			r.SocketHost, r.Dir, r.SocketHost)
	}
	if what == "setup" {
		fmt.Fprintf(w, "channels (unix sockets in %s): %s\n", r.Dir, strings.Join(r.Channels, " "))
	}
	for _, s := range r.Warnings {
		fmt.Fprintf(w, "warning: %s\n", s)
	}
}
