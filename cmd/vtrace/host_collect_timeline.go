package main

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/vtrace/vtrace/host/collect"
	"github.com/vtrace/vtrace/host/qmp"
	"github.com/vtrace/vtrace/host/virt"
	"github.com/vtrace/vtrace/internal/cli"
	"github.com/vtrace/vtrace/internal/sys"
)

// timelineFlags ask collect for the host's own events on one timeline
// with the guest's.
type timelineFlags struct {
	hostEvents   []string
	hostBuffer   cli.Size
	syncInterval time.Duration
	probes       int
	markers      bool
	qmp          []string // SOCKET, or NAME=SOCKET per guest
	uri          string
}

func (f *timelineFlags) addFlags(cmd *cobra.Command) {
	fl := cmd.Flags()
	fl.StringSliceVar(&f.hostEvents, "host-events", nil, "also record these events of the host (system or system:event, comma separated or repeated) into OUT/host.dat, on one timeline with the guest's trace.dat; both record with the mono clock unless --clock names another clock user space can read")
	fl.Var(&f.hostBuffer, "host-buffer-size", "with --host-events, the host's ring buffer per CPU (default: the kernel's)")
	fl.DurationVar(&f.syncInterval, "sync-interval", collect.DefaultSyncInterval, "with --host-events, time between bursts of clock probes while recording (also one at the start and one at the stop)")
	fl.IntVar(&f.probes, "sync-probes", collect.DefaultProbes, "with --host-events, clock probes per burst")
	fl.BoolVar(&f.markers, "sync-markers", false, "with --host-events, write a marker into both traces around every clock probe (vtrace-clock probe=ID send|recv|answer)")
	fl.StringArrayVar(&f.qmp, "qmp", nil, "with --host-events, qemu's QMP socket, to map each vCPU to its host thread in host.dat (a domain's come from libvirt); with several guests NAME=SOCKET, repeated")
	fl.StringVarP(&f.uri, "connect", "c", "", "with a domain, the libvirt URI to ask for its vCPU threads (--host-events) and whether it still runs (default $LIBVIRT_DEFAULT_URI, else "+virt.DefaultURI+")")
}

// timeline turns the flags into collect's Timeline; nil without
// --host-events. clock is --clock; name is the guest's ("": the domain, else the directory's base name).
func (f timelineFlags) timeline(t target, name, dir, clock string, start bool) (*collect.Timeline, error) {
	var events []string
	for _, list := range f.hostEvents {
		for _, ev := range strings.Split(list, ",") {
			if ev = strings.TrimSpace(ev); ev != "" {
				events = append(events, ev)
			}
		}
	}
	if len(events) == 0 {
		if len(f.qmp) > 0 || f.markers {
			return nil, usageError{errors.New("--qmp and --sync-markers need --host-events")}
		}
		return nil, nil
	}
	if !start {
		return nil, usageError{errors.New("--host-events needs --start: the clocks are compared over the agent's control port")}
	}
	if clock != "" {
		if _, err := sys.TraceClockByName(clock); err != nil {
			return nil, usageError{fmt.Errorf("--host-events with --clock %s: %w: both sides must read the clock they trace with", clock, err)}
		}
	}
	if f.syncInterval <= 0 || f.probes <= 0 || f.probes > 1024 {
		return nil, usageError{fmt.Errorf("check --sync-interval %v and --sync-probes %d: want a positive interval and 1 to 1024 probes", f.syncInterval, f.probes)}
	}
	tl := &collect.Timeline{HostEvents: events, HostBufferKiB: cli.BufferKiB(uint64(f.hostBuffer)), SyncInterval: f.syncInterval,
		Probes: f.probes, Markers: f.markers, Guest: name}
	if tl.Guest == "" {
		tl.Guest = t.domain
	}
	if tl.Guest == "" {
		tl.Guest = filepath.Base(dir)
	}
	qmpPath, err := f.qmpFor(tl.Guest)
	if err != nil {
		return nil, err
	}
	switch {
	case qmpPath != "":
		path := qmpPath
		tl.VCPUs = func(ctx context.Context) ([]qmp.VCPU, error) { return qmp.VCPUThreads(ctx, path) }
	case t.domain != "":
		domain, uri := t.domain, f.uri
		tl.VCPUs = func(context.Context) ([]qmp.VCPU, error) {
			c, err := virt.Connect(uri)
			if err != nil {
				return nil, err
			}
			defer c.Close()
			return c.VCPUThreads(domain)
		}
	}
	return tl, nil
}

// qmpFor is the QMP socket of guest name: the one --qmp NAME=SOCKET names,
// else a lone --qmp SOCKET; "" for none.
func (f timelineFlags) qmpFor(name string) (string, error) {
	plain := ""
	for _, q := range f.qmp {
		if n, path, ok := strings.Cut(q, "="); ok && !strings.Contains(n, "/") {
			if n == name {
				return path, nil
			}
			continue
		}
		if plain != "" {
			return "", usageError{fmt.Errorf("check --qmp %s: give one socket, or NAME=SOCKET for each guest", q)}
		}
		plain = q
	}
	return plain, nil
}
