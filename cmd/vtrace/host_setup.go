package main

import (
	"context"
	"errors"
	"fmt"
	"io"

	"github.com/spf13/cobra"

	"github.com/vtrace/vtrace/host/domxml"
	"github.com/vtrace/vtrace/host/fifo"
	"github.com/vtrace/vtrace/host/virt"
	"github.com/vtrace/vtrace/proto/channel"
)

// domainsOptions are what setup and teardown share: the domains and how
// to reach them.
type domainsOptions struct {
	uri     string
	domains []string
	dir     string
	dryRun  bool
	local   bool
	live    bool
	config  bool
	out     io.Writer
}

// options checks the domains and flags before libvirt is asked anything
// and gives each domain's virt.Options; cpus and group are setup's.
func (o *domainsOptions) options(cpus int, group string) ([]virt.Options, error) {
	if len(o.domains) > 1 && o.dir != "" {
		return nil, usageError{errors.New("--dir names one domain's FIFO directory: give one domain with it")}
	}
	var all []virt.Options
	for _, d := range o.domains {
		opts, err := hostOptions(d, o.dir, cpus, group, o.dryRun)
		if err != nil {
			return nil, err
		}
		opts.LocalFIFOs = o.local
		if err := liveOptions(&opts, o.live, o.config); err != nil {
			return nil, err
		}
		all = append(all, opts)
	}
	return all, nil
}

type hostSetupOptions struct {
	domainsOptions
	cpus  int
	group string
}

func newHostSetupCmd() *cobra.Command {
	o := &hostSetupOptions{}
	cmd := &cobra.Command{
		Use:   "setup <domain>...",
		Short: "Add the trace channels to a libvirt domain and make its FIFOs",
		Long: "Adds the pipe channels agent-ctl-path and trace-path-cpu0..N-1 to the domain's\n" +
			"persistent XML, N being its maximum vCPU count (<vcpu>N</vcpu>, vCPUs brought online\n" +
			"later included), and makes their FIFOs DIR/NAME.in and DIR/NAME.out (DIR defaults to\n" +
			fifo.DefaultBase + "/<domain>). Channels take free ports of the virtio-serial controllers\n" +
			"there are; when those run out, setup adds controllers of its own (or more ports on\n" +
			"one), so any vCPU count fits. Channels already there keep their addresses.\n" +
			"Running it again changes nothing; a changed vCPU count adds or removes ports.\n" +
			"Several domains are set up one after the other, each in " + fifo.DefaultBase + "/<domain>\n" +
			"(--dir is for one domain only); setup stops at the first that fails.\n\n" +
			"With --live it hot-plugs the channels into the running domain instead, as unix-socket\n" +
			"channels (libvirt cannot hot-plug pipes) whose sockets DIR/NAME libvirt creates: no\n" +
			"restart, and the persistent XML stays as it is unless --config is given too. The domain\n" +
			"needs a virtio-serial controller already (libvirt cannot hot-plug one). Every host\n" +
			"command finds the sockets in DIR and uses them as it uses FIFOs.",
		Args: cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			o.domains, o.out = args, cmd.OutOrStdout()
			return runHostSetup(cmd.Context(), o)
		},
	}
	f := cmd.Flags()
	f.StringVarP(&o.uri, "connect", "c", "", "libvirt URI (default $LIBVIRT_DEFAULT_URI, else "+virt.DefaultURI+")")
	f.StringVar(&o.dir, "dir", "", "FIFO directory (default "+fifo.DefaultBase+"/<domain>)")
	f.IntVar(&o.cpus, "cpus", 0, "number of trace ports (default: the domain's maximum vCPU count)")
	f.StringVar(&o.group, "group", "", "group (name or id) whose members may collect without root: the group of the directory and FIFOs,\n"+
		"and an ACL entry on the FIFOs that lasts while libvirt hands them to qemu's user")
	f.BoolVar(&o.dryRun, "dry-run", false, "print the XML diff and the FIFOs to make; change nothing")
	f.BoolVar(&o.local, "local-fifos", false, localFIFOsUsage)
	f.BoolVar(&o.live, "live", false, "hot-plug unix-socket channels into the running domain (no restart)")
	f.BoolVar(&o.config, "config", false, "with --live: make the same change in the persistent XML")
	return cmd
}

func runHostSetup(_ context.Context, o *hostSetupOptions) error {
	all, err := o.options(o.cpus, o.group)
	if err != nil {
		return err
	}
	for _, opts := range all {
		r, err := onSetup(o.uri, opts, o.live)
		if err != nil {
			if len(all) > 1 {
				return fmt.Errorf("domain %s: %w", opts.Domain, err)
			}
			return err
		}
		r.WriteSetup(o.out)
	}
	return nil
}

// onDomain connects to uri, runs do (virt.Setup, virt.Teardown or their
// live forms) and closes the connection.
func onDomain[R any](uri string, opts virt.Options, do func(*virt.Conn, virt.Options) (R, error)) (R, error) {
	c, err := virt.Connect(uri)
	if err != nil {
		var zero R
		return zero, err
	}
	defer c.Close()
	return do(c, opts)
}

// hostOptions checks what can be checked before talking to libvirt: the
// domain name (safe as a directory name), the vCPU count and the group.
func hostOptions(domain, dir string, cpus int, group string, dryRun bool) (virt.Options, error) {
	opts := virt.Options{Domain: domain, Dir: dir, CPUs: cpus, Group: -1, DryRun: dryRun}
	if _, err := virt.Dir(opts); err != nil {
		return opts, usageError{err}
	}
	if cpus < 0 {
		return opts, usageError{fmt.Errorf("check --cpus %d: must be 1 or more", cpus)}
	}
	if group != "" {
		g, err := fifo.LookupGroup(group)
		if err != nil {
			return opts, usageError{err}
		}
		opts.Group = g
	}
	return opts, nil
}

// report is what setup and teardown print, of pipe channels
// (virt.Result) or live ones (virt.LiveResult).
type report interface {
	WriteSetup(io.Writer)
	WriteTeardown(io.Writer)
}

// onSetup runs virt.Setup, or virt.SetupLive when live.
func onSetup(uri string, opts virt.Options, live bool) (report, error) {
	if live {
		return onDomain(uri, opts, virt.SetupLive)
	}
	return onDomain(uri, opts, virt.Setup)
}

// onTeardown runs virt.Teardown, or virt.TeardownLive when live.
func onTeardown(uri string, opts virt.Options, live bool) (report, error) {
	if live {
		return onDomain(uri, opts, virt.TeardownLive)
	}
	return onDomain(uri, opts, virt.Teardown)
}

// liveOptions checks and sets --live and --config: --config only goes
// with --live, as with virsh attach-device.
func liveOptions(opts *virt.Options, live, config bool) error {
	if config && !live {
		return usageError{errors.New("check --config: it goes with --live (without --live only the persistent XML changes)")}
	}
	opts.Config = config
	return nil
}

const localFIFOsUsage = "with a remote URI (qemu+ssh, qemu+tcp, ...), handle the FIFOs on this machine anyway\n" +
	"(when the remote daemon is this machine's); without it only the XML changes"

type hostTeardownOptions struct{ domainsOptions }

func newHostTeardownCmd() *cobra.Command {
	o := &hostTeardownOptions{}
	cmd := &cobra.Command{
		Use:   "teardown <domain>...",
		Short: "Remove what setup added",
		Long: "Removes the trace channels (and the virtio-serial controller setup added, if nothing\n" +
			"else uses it) from the domain's persistent XML, then the FIFOs, then their directory\n" +
			"if it is empty. Running it again changes nothing. Several domains are torn down one\n" +
			"after the other (--dir is for one domain only); teardown goes on past one that fails\n" +
			"and reports every failure.\n\n" +
			"With --live it hot-unplugs the unix-socket channels of setup --live from the running\n" +
			"domain and removes their sockets; the persistent XML stays as it is unless --config.",
		Args: cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			o.domains, o.out = args, cmd.OutOrStdout()
			return runHostTeardown(cmd.Context(), o)
		},
	}
	f := cmd.Flags()
	f.StringVarP(&o.uri, "connect", "c", "", "libvirt URI (default $LIBVIRT_DEFAULT_URI, else "+virt.DefaultURI+")")
	f.StringVar(&o.dir, "dir", "", "FIFO directory (default: the one the XML's channels name, else "+fifo.DefaultBase+"/<domain>)")
	f.BoolVar(&o.dryRun, "dry-run", false, "print the XML diff and the FIFOs to remove; change nothing")
	f.BoolVar(&o.local, "local-fifos", false, localFIFOsUsage)
	f.BoolVar(&o.live, "live", false, "hot-unplug the unix-socket channels from the running domain")
	f.BoolVar(&o.config, "config", false, "with --live: take the trace channels from the persistent XML too")
	return cmd
}

func runHostTeardown(_ context.Context, o *hostTeardownOptions) error {
	all, err := o.options(0, "")
	if err != nil {
		return err
	}
	var errs []error
	for _, opts := range all {
		r, err := onTeardown(o.uri, opts, o.live)
		if err != nil {
			if len(all) == 1 {
				return err
			}
			errs = append(errs, fmt.Errorf("domain %s: %w", opts.Domain, err))
			continue
		}
		r.WriteTeardown(o.out)
	}
	return errors.Join(errs...)
}

type hostQemuArgsOptions struct {
	cpus   int
	dir    string
	create bool
	group  string
	out    io.Writer
	errOut io.Writer
}

func newHostQemuArgsCmd() *cobra.Command {
	o := &hostQemuArgsOptions{}
	cmd := &cobra.Command{
		Use:   "qemu-args --cpus N [--dir DIR]",
		Short: "Print the qemu options for the trace channels",
		Long: "Prints the qemu options that give a guest started without libvirt the trace channels,\n" +
			"one per line with trailing backslashes: virtio-serial controllers with enough ports\n" +
			"(max_ports) for any vCPU count, a pipe chardev and a virtserialport per channel. With\n" +
			"--create it also makes DIR and the FIFOs DIR/NAME.in and DIR/NAME.out, with the same\n" +
			"safety rules as setup.",
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			o.out, o.errOut = cmd.OutOrStdout(), cmd.ErrOrStderr()
			return runHostQemuArgs(cmd.Context(), o)
		},
	}
	cmd.Flags().IntVar(&o.cpus, "cpus", 0, "the guest's maximum vCPU count (-smp maxcpus=): one trace port each")
	cmd.Flags().StringVar(&o.dir, "dir", "/tmp/virtio-trace", "FIFO directory")
	cmd.Flags().BoolVar(&o.create, "create", false, "also create the directory and its FIFOs")
	cmd.Flags().StringVar(&o.group, "group", "", "with --create: group (name or id) of the directory and FIFOs")
	return cmd
}

func runHostQemuArgs(_ context.Context, o *hostQemuArgsOptions) error {
	if o.cpus < 1 {
		return usageError{errors.New("check --cpus: give the guest's vCPU count (1 or more)")}
	}
	dir := o.dir
	if dir == "" {
		return usageError{errors.New("check --dir: empty")}
	}
	if o.create {
		gid := -1
		if o.group != "" {
			g, err := fifo.LookupGroup(o.group)
			if err != nil {
				return usageError{err}
			}
			gid = g
		}
		r, err := fifo.Create(dir, channel.Names(o.cpus), fifo.Options{Group: gid})
		if err != nil {
			return err
		}
		fmt.Fprintf(o.errOut, "FIFOs in %s: %d created, %d kept\n", dir, len(r.Created), len(r.Kept))
	}
	_, err := io.WriteString(o.out, domxml.FormatQemuArgs(domxml.QemuArgs(dir, o.cpus)))
	return err
}
