package virt

import (
	"fmt"
	"io"
	"path/filepath"
	"slices"
	"strings"

	"github.com/vtrace/vtrace/host/domxml"
	"github.com/vtrace/vtrace/host/fifo"
	"github.com/vtrace/vtrace/proto/channel"
)

// Options says which domain to set up or tear down, and how.
type Options struct {
	Domain string
	Dir    string // FIFO directory; "" means fifo.DefaultBase/<domain>
	CPUs   int    // trace ports; 0 means the domain's vCPU count
	Group  int    // group of the directory and FIFOs and of the FIFOs' ACL entry (fifo.Options); -1: none
	DryRun bool   // report, change nothing
	// Config, with SetupLive and TeardownLive, makes the same change in
	// the persistent XML (virsh's --config beside --live).
	Config bool
	// LocalFIFOs makes (or removes) the FIFOs on this machine even when the
	// connection is remote (Conn.Remote), for a remote URI that reaches
	// this machine's own daemon. Without it a remote setup or teardown
	// changes only the XML and says which FIFOs the remote host needs.
	LocalFIFOs bool
}

// Result reports what Setup or Teardown did (or, with DryRun, would do).
type Result struct {
	Domain   string
	URI      string
	Dir      string
	Channels []string // the channels the domain has afterwards (Setup)
	Changed  bool     // the domain XML changed (or would change)
	Diff     string   // the XML diff, "" when unchanged
	FIFOs    fifo.Report
	Running  bool // the domain runs: XML changes apply at its next boot
	DryRun   bool
	// FIFOHost is set when the FIFOs were left alone because the domain
	// runs on that (remote) host; RemoteFIFOs lists the paths it needs
	// (Setup).
	FIFOHost    string
	RemoteFIFOs []string
	// Warnings are what stands between the FIFOs and qemu or the group's
	// users (a directory qemu cannot pass, an AppArmor refusal, a file
	// system without ACLs): setup did its job, but the domain may not start
	// or the group may not collect.
	Warnings []string
}

// fifosElsewhere reports whether the FIFOs of c's domains live on another
// host, so Setup and Teardown must not touch this machine's.
func fifosElsewhere(c *Conn, opts Options) bool {
	return c.Remote() != "" && !opts.LocalFIFOs
}

// Dir returns the FIFO directory of opts after checking the domain name:
// opts.Dir when set, else fifo.DefaultBase/<domain>.
func Dir(opts Options) (string, error) {
	base, err := fifo.DomainDir("", opts.Domain)
	if err != nil {
		return "", err
	}
	if opts.Dir == "" {
		return base, nil
	}
	d, err := filepath.Abs(opts.Dir)
	if err != nil {
		return "", fmt.Errorf("resolve --dir %s: %w", opts.Dir, err)
	}
	return d, nil
}

// Setup gives the domain its trace channels and their FIFOs: it patches the
// inactive XML (adding a virtio-serial controller if needed), makes the
// FIFOs, removes those of trace ports the domain no longer has, and
// redefines the domain. The FIFOs come first, so a refusal there (a symlink,
// a regular file) leaves the domain as it was.
func Setup(c *Conn, opts Options) (Result, error) {
	dir, err := Dir(opts)
	if err != nil {
		return Result{}, err
	}
	if opts.CPUs < 0 {
		return Result{}, fmt.Errorf("set up domain %q: negative vCPU count %d", opts.Domain, opts.CPUs)
	}
	r := Result{Domain: opts.Domain, URI: c.URI(), Dir: dir, DryRun: opts.DryRun}
	old, err := c.InactiveXML(opts.Domain)
	if err != nil {
		return r, err
	}
	before, err := domxml.Inspect(old)
	if err != nil {
		return r, fmt.Errorf("set up domain %q: %w", opts.Domain, err)
	}
	patched, changed, err := domxml.Patch(old, domxml.Spec{Dir: dir, CPUs: opts.CPUs})
	if err != nil {
		return r, fmt.Errorf("set up domain %q: %w", opts.Domain, err)
	}
	after, err := domxml.Inspect(patched)
	if err != nil {
		return r, fmt.Errorf("set up domain %q: %w", opts.Domain, err)
	}
	r.Channels, r.Changed = after.ChannelNames(), changed
	r.Diff = domxml.Diff("inactive XML of "+opts.Domain, "patched", old, patched)

	if fifosElsewhere(c, opts) {
		r.FIFOHost = c.Remote()
		for _, n := range r.Channels {
			in, out := fifo.Paths(dir, n)
			r.RemoteFIFOs = append(r.RemoteFIFOs, in, out)
		}
	} else {
		if err := setupFIFOs(&r, before, opts); err != nil {
			return r, err
		}
		r.Warnings = append(r.Warnings, r.FIFOs.Notes...)
		if a, err := c.access(patched); err != nil {
			r.Warnings = append(r.Warnings, fmt.Sprintf("cannot check that qemu can open the FIFOs: %v", err))
		} else {
			r.Warnings = append(r.Warnings, accessWarnings(dir, opts.Group, a)...)
		}
	}
	err = redefine(c, &r, opts, patched) // before r is read for the return
	return r, err
}

// setupFIFOs makes the FIFOs of r.Channels in r.Dir and removes those of
// trace ports that went away: the old XML's (before) and any in the directory.
func setupFIFOs(r *Result, before domxml.Info, opts Options) error {
	var err error
	fopts := fifo.Options{Group: opts.Group, DryRun: opts.DryRun}
	if r.FIFOs, err = fifo.Create(r.Dir, r.Channels, fopts); err != nil {
		return err
	}
	inDir, err := fifo.Names(r.Dir)
	if err != nil {
		return err
	}
	var stale []string
	for _, n := range append(before.ChannelNames(), inDir...) {
		if !slices.Contains(r.Channels, n) && !slices.Contains(stale, n) {
			stale = append(stale, n)
		}
	}
	if len(stale) > 0 {
		rm, err := fifo.Remove(r.Dir, stale, fifo.Options{Group: -1, DryRun: opts.DryRun, KeepDir: true})
		r.FIFOs.Removed = rm.Removed
		if err != nil {
			return err
		}
	}
	return nil
}

// Teardown undoes Setup: it removes the trace channels from the inactive
// XML (and the virtio-serial controller Setup added, when nothing else uses
// it), redefines the domain, and removes the FIFOs and then the directory if
// it is empty. The FIFOs are those of opts.Dir when set, else of the one
// directory the channels' source paths name, else of the default directory.
// Running it again changes nothing.
func Teardown(c *Conn, opts Options) (Result, error) {
	dir, err := Dir(opts)
	if err != nil {
		return Result{}, err
	}
	r := Result{Domain: opts.Domain, URI: c.URI(), Dir: dir, DryRun: opts.DryRun}
	old, err := c.InactiveXML(opts.Domain)
	if err != nil {
		return r, err
	}
	before, err := domxml.Inspect(old)
	if err != nil {
		return r, fmt.Errorf("tear down domain %q: %w", opts.Domain, err)
	}
	if xmlDir, ok := before.FIFODir(); ok && opts.Dir == "" {
		// Set up with --dir elsewhere: the XML remembers where.
		r.Dir = xmlDir
	}
	clean, changed, err := domxml.Unpatch(old)
	if err != nil {
		return r, fmt.Errorf("tear down domain %q: %w", opts.Domain, err)
	}
	r.Changed = changed
	r.Diff = domxml.Diff("inactive XML of "+opts.Domain, "without trace channels", old, clean)

	if fifosElsewhere(c, opts) {
		r.FIFOHost = c.Remote()
	} else if err := teardownFIFOs(&r, before, opts); err != nil {
		return r, err
	}
	err = redefine(c, &r, opts, clean) // before r is read for the return
	return r, err
}

// redefine redefines the domain with doc when r says its XML changed (unless
// a dry run), and records whether the domain runs.
func redefine(c *Conn, r *Result, opts Options, doc []byte) error {
	if r.Changed && !opts.DryRun {
		if err := c.Define(opts.Domain, doc); err != nil {
			return err
		}
	}
	var err error
	r.Running, err = c.Active(opts.Domain)
	return err
}

// teardownFIFOs removes from r.Dir the FIFOs of the old XML's channels
// (before), of its vCPU count and any trace-path FIFO in the directory.
func teardownFIFOs(r *Result, before domxml.Info, opts Options) error {
	names := before.ChannelNames()
	if before.CPUs > 0 {
		names = append(names, channel.Names(before.CPUs)...)
	}
	inDir, err := fifo.Names(r.Dir)
	if err != nil {
		return err
	}
	var all []string
	for _, n := range append(names, inDir...) {
		if !slices.Contains(all, n) {
			all = append(all, n)
		}
	}
	r.FIFOs, err = fifo.Remove(r.Dir, all, fifo.Options{Group: -1, DryRun: opts.DryRun})
	return err
}

// WriteSetup tells a person what Setup did.
func (r Result) WriteSetup(w io.Writer) {
	r.write(w, "setup")
}

// WriteTeardown tells a person what Teardown did.
func (r Result) WriteTeardown(w io.Writer) {
	r.write(w, "teardown")
}

func (r Result) write(w io.Writer, what string) {
	would := func(done, planned string) string {
		if r.DryRun {
			return planned
		}
		return done
	}
	if r.DryRun {
		fmt.Fprintf(w, "dry run: nothing is changed\n")
	}
	if r.Changed {
		fmt.Fprintf(w, "domain %s: %s (%s)\n", r.Domain, would("redefined", "would be redefined"), r.URI)
		io.WriteString(w, r.Diff)
	} else {
		fmt.Fprintf(w, "domain %s: XML already as wanted\n", r.Domain)
	}
	listPaths(w, would("created", "would create"), r.FIFOs.Created)
	listPaths(w, would("adjusted (mode, group or ACL)", "would adjust (mode, group or ACL)"), r.FIFOs.Adjusted)
	listPaths(w, would("removed", "would remove"), r.FIFOs.Removed)
	if len(r.FIFOs.Kept) > 0 {
		fmt.Fprintf(w, "kept %d existing entries in %s\n", len(r.FIFOs.Kept), r.Dir)
	}
	listPaths(w, "left in place (holds other files)", r.FIFOs.Left)
	if r.FIFOHost != "" {
		r.writeRemote(w, what)
	} else if !r.Changed && len(r.FIFOs.Created)+len(r.FIFOs.Adjusted)+len(r.FIFOs.Removed) == 0 {
		fmt.Fprintf(w, "nothing to change\n")
	}
	if what == "setup" {
		fmt.Fprintf(w, "channels: %s\n", strings.Join(r.Channels, " "))
	}
	for _, s := range r.Warnings {
		fmt.Fprintf(w, "warning: %s\n", s)
	}
	if r.Running && r.Changed {
		fmt.Fprintf(w, "domain %s is running: libvirt cannot hot-plug pipe channels, so the change takes effect at its next boot.\n"+
			"Restart it: virsh -c %s shutdown %s, wait until it is off, then virsh -c %s start %s\n"+
			"(or at once, without a clean guest shutdown: virsh destroy %s; virsh start %s)\n",
			r.Domain, r.URI, r.Domain, r.URI, r.Domain, r.Domain, r.Domain)
	}
}

// writeRemote says that the FIFOs were left alone because the domain runs
// on r.FIFOHost, and how to make (or remove) them there.
func (r Result) writeRemote(w io.Writer, what string) {
	fmt.Fprintf(w, "FIFOs: none %s on this machine: the domain runs on %s, whose qemu opens them there.\n",
		map[string]string{"setup": "made", "teardown": "removed"}[what], r.FIFOHost)
	fmt.Fprintf(w, "On %s, run: vtrace host %s --dir %s %s\n", r.FIFOHost, what, r.Dir, r.Domain)
	if what == "setup" {
		fmt.Fprintf(w, "It finds the XML done and makes these FIFOs (directory mode %04o, FIFOs %04o):\n", fifo.DirPerm, fifo.FIFOPerm)
		for _, p := range r.RemoteFIFOs {
			fmt.Fprintf(w, "  %s\n", p)
		}
	}
	fmt.Fprintf(w, "If %s is this machine, run this command again with --local-fifos.\n", r.FIFOHost)
}

// listPaths writes "VERB:" and paths one an indented line, or nothing
// when there are none: the files setup and teardown made or removed.
func listPaths(w io.Writer, verb string, paths []string) {
	if len(paths) == 0 {
		return
	}
	fmt.Fprintf(w, "%s:\n", verb)
	for _, p := range paths {
		fmt.Fprintf(w, "  %s\n", p)
	}
}
