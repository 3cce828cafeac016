package main

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"strings"

	"github.com/digitalocean/go-libvirt"
	"github.com/spf13/cobra"

	"github.com/vtrace/vtrace/host/fifo"
	"github.com/vtrace/vtrace/host/virt"
)

// guests are the guests a host command works on: domains (arguments,
// each under fifo.DefaultBase) and FIFO directories (--dir, repeatable,
// DIR or NAME=DIR).
type guests struct {
	domains []string
	dirs    []string
}

func (g *guests) addFlags(cmd *cobra.Command) {
	cmd.Flags().StringArrayVar(&g.dirs, "dir", nil, "FIFO directory (instead of a domain's "+fifo.DefaultBase+"/<domain>); repeat it for several guests, "+
		"NAME=DIR naming the guest (default: the directory's base name)")
}

func (g *guests) fill(args []string) { g.domains = args }

// guestDir is one guest: its name, FIFO directory, and domain (libvirt's;
// "" for a --dir).
type guestDir struct {
	name, dir, domain string
}

// target is the single target of one guest, for the commands' single-guest paths.
func (d guestDir) target() target { return target{domain: d.domain, dir: d.dirFlag()} }

func (d guestDir) dirFlag() string {
	if d.domain != "" {
		return ""
	}
	return d.dir
}

// resolve returns the guests, in the order given: domains first, then the
// --dir ones. Names must be safe as directory names and distinct.
func (g guests) resolve() ([]guestDir, error) {
	var all []guestDir
	for _, d := range g.domains {
		dir, err := fifo.DomainDir(fifo.DefaultBase, d)
		if err != nil {
			return nil, usageError{err}
		}
		all = append(all, guestDir{name: d, dir: dir, domain: d})
	}
	for _, spec := range g.dirs {
		d := parseDirSpec(spec)
		if d.dir == "" {
			return nil, usageError{fmt.Errorf("check --dir %q: no directory", spec)}
		}
		if err := fifo.CheckDomainName(d.name); err != nil {
			return nil, usageError{fmt.Errorf("check --dir %q: %w: name it with NAME=DIR", spec, err)}
		}
		all = append(all, d)
	}
	if len(all) == 0 {
		return nil, usageError{errors.New("give a domain or --dir DIR")}
	}
	seen := map[string]bool{}
	for _, d := range all {
		if seen[d.name] {
			return nil, usageError{fmt.Errorf("check the guests: %q is given twice; name each --dir with NAME=DIR", d.name)}
		}
		seen[d.name] = true
	}
	return all, nil
}

// parseDirSpec reads --dir's NAME=DIR or DIR: the part before the first
// "=" is a name when it holds no "/" (a directory may contain "=").
func parseDirSpec(spec string) guestDir {
	if name, dir, ok := strings.Cut(spec, "="); ok && name != "" && !strings.Contains(name, "/") {
		return guestDir{name: name, dir: dir}
	}
	return guestDir{name: filepath.Base(filepath.Clean(spec)), dir: spec}
}

// domainAlive returns Config.Alive for a libvirt domain: an error once the
// domain, seen running, is shut off, crashed or gone (a collect started
// before the domain waits for it). It keeps one connection to libvirt,
// made at the first call, which close releases. A connection that fails
// says nothing (nil): the FIFO check still notices qemu's end.
func domainAlive(uri, domain string) (alive func(context.Context) error, close func()) {
	var c *virt.Conn
	running := false
	alive = func(context.Context) error {
		if c == nil {
			var err error
			if c, err = virt.Connect(uri); err != nil {
				c = nil
				return nil
			}
		}
		l := c.Libvirt()
		dom, err := l.DomainLookupByName(domain)
		if err != nil {
			var lerr libvirt.Error
			if errors.As(err, &lerr) && lerr.Code == uint32(libvirt.ErrNoDomain) && running {
				return fmt.Errorf("the domain %s is gone from libvirt", domain)
			}
			return nil
		}
		state, reason, err := l.DomainGetState(dom, 0)
		if err != nil {
			return nil
		}
		switch libvirt.DomainState(state) {
		case libvirt.DomainRunning, libvirt.DomainPaused, libvirt.DomainBlocked:
			running = true
		case libvirt.DomainShutoff:
			if !running {
				return nil
			}
			return fmt.Errorf("the domain %s is shut off (libvirt's reason %d)", domain, reason)
		case libvirt.DomainCrashed:
			if !running {
				return nil
			}
			return fmt.Errorf("the domain %s crashed (libvirt's reason %d)", domain, reason)
		}
		return nil
	}
	return alive, func() {
		if c != nil {
			c.Close()
		}
	}
}
