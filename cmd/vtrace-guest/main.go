// Command vtrace-guest is vtrace's guest side alone: the agent, its
// installation as a service, and its version, with no cobra, libvirt or
// SSH code, for small guests. It takes the host binary's command line
// (`vtrace guest agent ...`, when installed as vtrace) and the shorter
// `vtrace-guest agent ...`; the flags come from internal/cli, as the host
// binary's do.
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"

	"github.com/vtrace/vtrace/dist"
	"github.com/vtrace/vtrace/internal/cli"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := execute(ctx, filepath.Base(os.Args[0]), os.Args[1:], os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}

// execute runs args as the program called prog and returns the exit code:
// 0, 1 for an error while running, 2 for a usage error, printed on stderr
// after "prog: ".
func execute(ctx context.Context, prog string, args []string, stdout, stderr io.Writer) int {
	err := run(ctx, prog, args, stdout, stderr)
	switch {
	case err == nil:
		return 0
	case cli.IsUsage(err):
		fmt.Fprintf(stderr, "%s: %v\nRun '%s --help' for usage.\n", prog, err, prog)
		return 2
	}
	fmt.Fprintf(stderr, "%s: %v\n", prog, err)
	return 1
}

func run(ctx context.Context, prog string, args []string, stdout, stderr io.Writer) error {
	path := prog // the command's words, for help and errors
	if len(args) > 0 && args[0] == "guest" {
		args, path = args[1:], prog+" guest"
	}
	if len(args) == 0 {
		writeHelp(stdout, prog)
		return nil
	}
	word, args := args[0], args[1:]
	path += " " + word
	switch word {
	case "agent":
		o := cli.NewAgentOptions()
		if err := parse(o.Flags(), args, path, stdout, cli.AgentLong); err != nil {
			return noHelp(err)
		}
		return cli.RunAgent(ctx, *o, stderr, cli.ReadBuild().Short())
	case "install", "uninstall":
		var o installOptions
		if err := parse(o.flags(), args, path, stdout, installHelp(word)); err != nil {
			return noHelp(err)
		}
		return runInstall(word == "install", o, stdout)
	case "version", "--version":
		if err := parse(nil, args, path, stdout, "Print the version, VCS revision and time, and Go version."); err != nil {
			return noHelp(err)
		}
		return cli.ReadBuild().Write(stdout, prog)
	case "help", "-h", "--help":
		writeHelp(stdout, prog)
		return nil
	case "host":
		return cli.Usagef("%q is not in this binary, vtrace's guest side: run the host's commands with the host's vtrace", path)
	}
	return cli.Usagef("unknown command %q for %q", word, strings.TrimSuffix(path, " "+word))
}

// parse reads a command's flags and refuses other words; -h prints the
// command's help (long text, then its flags) and returns cli.ErrHelp.
func parse(flags []cli.Flag, args []string, path string, stdout io.Writer, long string) error {
	rest, err := cli.Parse(flags, args)
	if errors.Is(err, cli.ErrHelp) {
		fmt.Fprintf(stdout, "%s\n\nUsage:\n  %s [flags]\n\nFlags:\n", long, path)
		cli.WriteFlags(stdout, flags)
		return err
	}
	if err != nil {
		return err
	}
	if len(rest) > 0 {
		return cli.Usagef("unknown command %q for %q", rest[0], path)
	}
	return nil
}

// noHelp turns the help's ErrHelp into success.
func noHelp(err error) error {
	if errors.Is(err, cli.ErrHelp) {
		return nil
	}
	return err
}

func writeHelp(w io.Writer, prog string) {
	fmt.Fprintf(w, `The guest side of vtrace: the agent that streams ftrace ring-buffer pages to
the host over virtio-serial, and its installation as a service. The host's
commands are in the host's vtrace.

Usage:
  %[1]s agent [flags]       %[2]s
  %[1]s install [flags]     install this binary and the agent's service
  %[1]s uninstall [flags]   remove them
  %[1]s version             print the version

The host binary's words work too: %[1]s guest agent [flags].
Run '%[1]s COMMAND --help' for a command's flags.
`, prog, strings.ToLower(cli.AgentShort[:1])+cli.AgentShort[1:])
}

func installHelp(word string) string {
	if word == "uninstall" {
		return `Remove what install puts in place (the binary in PREFIX/bin and the files
of the init system); the service is not stopped.`
	}
	return `Install this binary as PREFIX/bin/vtrace-guest and what starts the agent:
under systemd the unit /etc/systemd/system/vtrace-agent.service and the udev
rule /etc/udev/rules.d/60-vtrace-agent.rules, which starts the unit when the
control port agent-ctl-path appears; without systemd the init script
/etc/init.d/vtrace-agent (a plain one for busybox and sysvinit, or an
OpenRC one). --root installs into a guest's file tree instead of this
system. --now also starts the agent (systemd: reloads systemd and udev and
replays the ports' events).`
}

type installOptions struct {
	root, prefix, init string
	now                bool
}

func (o *installOptions) flags() []cli.Flag {
	o.prefix = "/usr/local"
	return []cli.Flag{
		{Name: "root", Usage: "install into this file tree (a guest image) instead of /", Value: cli.StringValue(&o.root)},
		{Name: "prefix", Usage: "the binary goes to PREFIX/bin", Value: cli.StringValue(&o.prefix)},
		{Name: "init", Usage: "init system: systemd, sysv (busybox, sysvinit) or openrc (default: the one found)", Value: cli.StringValue(&o.init)},
		{Name: "now", Usage: "also start the agent (not with --root)", Value: cli.BoolValue(&o.now)},
	}
}

func runInstall(install bool, o installOptions, stdout io.Writer) error {
	if o.now && o.root != "" && o.root != "/" {
		return cli.Usagef("check --now: it starts the agent on this system, not in --root %s", o.root)
	}
	opts := dist.Options{Root: o.root, Prefix: o.prefix, Init: dist.Init(o.init)}
	switch opts.Init {
	case "":
		opts.Init = dist.DetectInit(o.root)
	case dist.InitSystemd, dist.InitSysv, dist.InitOpenRC:
	default:
		return cli.Usagef("check --init %q: want systemd, sysv or openrc", o.init)
	}
	if !filepath.IsAbs(o.prefix) {
		return cli.Usagef("check --prefix %q: want an absolute path", o.prefix)
	}
	if !install {
		placed, err := dist.Uninstall(opts)
		for _, p := range placed {
			fmt.Fprintf(stdout, "removed %s (%s)\n", p.Path, p.What)
		}
		return err
	}
	placed, err := dist.Install(opts)
	for _, p := range placed {
		fmt.Fprintf(stdout, "installed %s (%s)\n", p.Path, p.What)
	}
	if err != nil {
		return err
	}
	steps := startSteps(opts.Init)
	if !o.now {
		if o.root == "" || o.root == "/" {
			fmt.Fprintf(stdout, "start the agent with: %s (or install with --now)\n", strings.Join(stepText(steps), " && "))
		}
		return nil
	}
	// The steps run in a shell that replaces this process: no process
	// package to carry for a command run once.
	script := strings.Join(stepText(steps), " && ")
	fmt.Fprintf(stdout, "starting the agent: %s\n", script)
	if err := syscall.Exec("/bin/sh", []string{"sh", "-c", script}, os.Environ()); err != nil {
		return fmt.Errorf("start the agent: run /bin/sh: %w", err)
	}
	return nil
}

// startSteps are the commands that start an installed agent.
func startSteps(init dist.Init) [][]string {
	switch init {
	case dist.InitSystemd:
		return [][]string{{"systemctl", "daemon-reload"}, {"udevadm", "control", "--reload"},
			{"udevadm", "trigger", "--action=add", "--subsystem-match=virtio-ports"}}
	case dist.InitOpenRC:
		return [][]string{{"rc-update", "add", "vtrace-agent", "default"}, {"rc-service", "vtrace-agent", "start"}}
	}
	return [][]string{{"/etc/init.d/vtrace-agent", "start"}}
}

func stepText(steps [][]string) []string {
	var s []string
	for _, st := range steps {
		s = append(s, strings.Join(st, " "))
	}
	return s
}
