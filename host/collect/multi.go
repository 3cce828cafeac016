package collect

// A capture of several guests (RunGuests): each guest's capture goes to
// OUT/NAME exactly as Run writes a single one, the start orders go out
// together (the host marks each in its trace first, with a timeline), and
// one guest that fails, stops answering or goes away ends its own capture
// while the others go on. With a timeline, one recording of the host's
// events is placed against every guest: OUT/host.dat has a GUEST option
// per guest.

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/vtrace/vtrace/host/fifo"
	"github.com/vtrace/vtrace/host/qmp"
)

// Target is one guest of a capture of several.
type Target struct {
	// Name is the guest's name: its capture directory OUT/NAME and its
	// name in host.dat's GUEST option. It must be safe as one path
	// component (fifo.CheckDomainName).
	Name string
	Dir  string // its FIFO directory
	// Alive and VCPUs are Config.Alive and Timeline.VCPUs for this guest.
	Alive func(context.Context) error
	VCPUs func(context.Context) ([]qmp.VCPU, error)
}

// GuestSummary is one guest's part of a capture of several.
type GuestSummary struct {
	Name string
	Summary
	// Link is OUT/NAME.dat, a symbolic link to NAME/trace.dat: trace-cmd
	// starts each line of a merged report with the file's base name,
	// which the link makes the guest's.
	Link string
	Err  error // what ended or failed this guest's capture (ErrGuestGone: it went away)
}

// MultiSummary is the outcome of a capture of several guests.
type MultiSummary struct {
	Out    string
	Guests []GuestSummary
	// StartsSent and StartsAnswered are the spread between the first and
	// the last guest's start order, as sent and as answered (confirmed by
	// each agent), over the guests that started; 0 for fewer than two.
	StartsSent, StartsAnswered time.Duration
	FirstStarted, LastStarted  string // the guests answering first and last
	HostDat                    string // OUT/host.dat, when written
	Notes                      []string
}

// RunGuests collects from every guest in targets at once into OUT/NAME
// (cfg.Out is OUT; cfg.Dir and cfg.Alive are not used, the targets' are).
// Each guest is prepared (handshake, metadata, stale pages) in parallel;
// one that cannot be prepared fails the whole capture before any start
// order. Then the start orders go out together, and the capture ends for
// all at ctx's end or cfg.Duration, and for one guest alone when it fails
// or goes away. The error names the guests that failed or went away
// (errors.Is finds ErrGuestGone when some went away); the MultiSummary is
// worth printing whenever it has guests.
func RunGuests(ctx context.Context, cfg Config, targets []Target) (MultiSummary, error) {
	cfg = withDefaults(cfg)
	ms := MultiSummary{Out: cfg.Out}
	if len(targets) == 0 {
		return ms, errors.New("check the guests: none given")
	}
	seen := map[string]bool{}
	for _, t := range targets {
		if err := fifo.CheckDomainName(t.Name); err != nil {
			return ms, fmt.Errorf("check guest name: %w", err)
		}
		if t.Name == HostDir || t.Name == MetaDir {
			return ms, fmt.Errorf("check guest name %q: the capture uses OUT/%s for itself; name the guest otherwise (NAME=DIR)", t.Name, t.Name)
		}
		if seen[t.Name] {
			return ms, fmt.Errorf("check guest name %q: given twice; name each guest (NAME=DIR)", t.Name)
		}
		seen[t.Name] = true
	}
	if err := prepareOut(cfg.Out, cfg.Force); err != nil {
		return ms, err
	}
	var host *hostRecording
	if cfg.Timeline != nil {
		host = newHostRecording(*cfg.Timeline, cfg.Out)
	}
	guests := make([]*guestRun, len(targets))
	errs := make([]error, len(targets))
	var wg sync.WaitGroup
	for i, t := range targets {
		gcfg := cfg
		gcfg.Dir, gcfg.Out, gcfg.Alive = t.Dir, filepath.Join(cfg.Out, t.Name), t.Alive
		gcfg.Duration, gcfg.Progress, gcfg.Log = 0, nil, prefixLog(cfg.Log, t.Name)
		if cfg.Timeline != nil {
			tl := *cfg.Timeline
			tl.Guest, tl.VCPUs = t.Name, t.VCPUs
			gcfg.Timeline = &tl
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			guests[i], errs[i] = prepare(ctx, gcfg, host)
			guests[i].name = t.Name
		}()
	}
	wg.Wait()
	abandon := func() {
		for i, g := range guests {
			if errs[i] == nil {
				g.abandon()
			}
		}
	}
	var bad []string
	for i, err := range errs {
		if err != nil {
			bad = append(bad, fmt.Sprintf("guest %s: %v", targets[i].Name, err))
		}
	}
	if len(bad) > 0 {
		abandon()
		return ms, errors.New(strings.Join(bad, "; "))
	}
	var tls []*timeline
	for _, g := range guests {
		tls = append(tls, g.tl)
	}
	if err := host.start(tls...); err != nil {
		abandon()
		return ms, err
	}
	for _, g := range guests {
		g.launch()
	}
	stopProgress := startProgress(cfg.Progress, cfg.ProgressEvery, guests, true)

	// The start orders, together: every guest's goroutine is ready
	// before any order goes out.
	go1 := make(chan struct{})
	startErrs := make([]error, len(guests))
	for i, g := range guests {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-go1
			startErrs[i] = g.start(ctx)
		}()
	}
	close(go1)
	wg.Wait()
	ms.spread(guests)

	stop := make(chan struct{})
	if cfg.Duration > 0 {
		t := time.AfterFunc(cfg.Duration, func() { close(stop) })
		defer t.Stop()
	}
	runErrs := make([]error, len(guests))
	for i, g := range guests {
		runErrs[i] = startErrs[i]
		if !g.started {
			continue
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			runErrs[i] = g.until(ctx, stop)
			g.stop(ctx, runErrs[i])
		}()
	}
	wg.Wait()
	for _, g := range guests {
		g.wg.Wait()
	}
	stopProgress()

	var started []*timeline
	for i, g := range guests {
		sum, err := g.finish(ctx, runErrs[i])
		ms.Guests = append(ms.Guests, GuestSummary{Name: g.name, Summary: sum, Err: err})
		if g.started {
			started = append(started, g.tl)
		}
	}
	ms.HostDat = host.finish(started, cfg.TraceDatOptions, &ms.Notes)
	host.abort()
	for i := range ms.Guests {
		ms.Guests[i].Link = linkTraceDat(cfg.Out, ms.Guests[i], &ms.Notes)
	}
	for _, gs := range ms.Guests {
		if gs.Timeline != nil {
			gs.Timeline.HostDat = "" // one host.dat for all: MultiSummary.HostDat
		}
	}
	return ms, ms.err()
}

// spread measures how far apart the start orders went out and were
// answered, over the guests whose start was answered.
func (ms *MultiSummary) spread(guests []*guestRun) {
	var sent, answered []time.Time
	var first, last *guestRun
	for _, g := range guests {
		if !g.started || g.startSent.IsZero() || g.startAnswered.IsZero() {
			continue
		}
		sent = append(sent, g.startSent)
		answered = append(answered, g.startAnswered)
		if first == nil || g.startAnswered.Before(first.startAnswered) {
			first = g
		}
		if last == nil || g.startAnswered.After(last.startAnswered) {
			last = g
		}
	}
	if len(sent) < 2 {
		return
	}
	ms.StartsSent, ms.StartsAnswered = span(sent), span(answered)
	ms.FirstStarted, ms.LastStarted = first.name, last.name
}

func span(ts []time.Time) time.Duration {
	lo, hi := ts[0], ts[0]
	for _, t := range ts[1:] {
		if t.Before(lo) {
			lo = t
		}
		if t.After(hi) {
			hi = t
		}
	}
	return hi.Sub(lo)
}

// err names the guests whose capture failed or ended early (errors.Is
// finds ErrGuestGone, and the other errors, through it).
func (ms MultiSummary) err() error {
	var errs []error
	for _, g := range ms.Guests {
		if g.Err != nil {
			errs = append(errs, fmt.Errorf("guest %s: %w", g.Name, g.Err))
		}
	}
	return errors.Join(errs...)
}

// prefixLog prefixes what is written to w with the guest's name; nil
// without w. Notices are written a line at a time.
func prefixLog(w io.Writer, name string) io.Writer {
	if w == nil {
		return nil
	}
	return prefixWriter{w: w, prefix: name + ": "}
}

type prefixWriter struct {
	w      io.Writer
	prefix string
}

func (p prefixWriter) Write(b []byte) (int, error) {
	if _, err := io.WriteString(p.w, p.prefix+string(b)); err != nil {
		return 0, err
	}
	return len(b), nil
}

// linkTraceDat makes OUT/NAME.dat a symbolic link to NAME/trace.dat (a
// link there already, from an earlier capture, is replaced) and returns
// its path; "" without a trace.dat, or with a note when it cannot.
func linkTraceDat(out string, g GuestSummary, notes *[]string) string {
	if g.TraceDat == "" {
		return ""
	}
	link := filepath.Join(out, g.Name+".dat")
	if fi, err := os.Lstat(link); err == nil && fi.Mode()&os.ModeSymlink != 0 {
		os.Remove(link)
	}
	if err := os.Symlink(filepath.Join(g.Name, TraceDat), link); err != nil {
		*notes = append(*notes, fmt.Sprintf("no %s: %v", link, err))
		return ""
	}
	return link
}
