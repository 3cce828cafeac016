package session

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/vtrace/vtrace/host/meta"
	"github.com/vtrace/vtrace/proto/wire"
)

// Metadata asked for before a recording and after it.
var (
	MetaBefore = []wire.MetaKind{wire.MetaHeaderPage, wire.MetaHeaderEvent, wire.MetaFormat, wire.MetaKallsyms,
		wire.MetaPrintkFormats, wire.MetaTraceClock, wire.MetaUname}
	MetaAfter = []wire.MetaKind{wire.MetaSavedCmdlines, wire.MetaSavedTgids}
)

// Meta asks the agent for the items of kinds and adds what it sends to
// set. It returns the agent's list of items it could not send (an item
// the guest lacks is no error here; set.Validate says what is required).
// Chunks must come as wire.MetaAssembler demands, each item within
// host/meta's bounds, and of a kind that was asked for; anything else, or
// an unreadable frame in the middle of the transfer, ends it with an
// error. The wait for each chunk is bounded by MetaIdleTimeout, the whole
// transfer by MetaTimeout.
func (s *Session) Meta(ctx context.Context, kinds []wire.MetaKind, set *meta.Set) ([]string, error) {
	if s.LineProtocol() {
		return nil, fmt.Errorf("ask for metadata: %w", ErrLineProtocol)
	}
	id := s.nextID()
	if err := s.send(&wire.MetaRequest{ID: id, Items: kinds}); err != nil {
		return nil, fmt.Errorf("ask for metadata: %w", err)
	}
	fail := func(err error) ([]string, error) { return nil, fmt.Errorf("receive metadata: %w", err) }
	var asm wire.MetaAssembler
	got := 0
	end := time.Now().Add(s.opts.MetaTimeout)
	for {
		deadline := time.Now().Add(s.opts.MetaIdleTimeout)
		if deadline.After(end) {
			deadline = end
		}
		msg, ferr, err := s.recv(ctx, deadline)
		if errors.Is(err, ErrTimeout) {
			return fail(fmt.Errorf("%w: nothing for %v after %d items", ErrTimeout, s.opts.MetaIdleTimeout, got))
		}
		if err != nil {
			return fail(err)
		}
		if ferr != nil {
			return fail(ferr) // a lost chunk would leave a hole
		}
		switch m := msg.(type) {
		case *wire.MetaChunk:
			if m.ID != id {
				s.note(fmt.Errorf("metadata chunk for request %d", m.ID))
				continue
			}
			if !slices.Contains(kinds, m.Kind) {
				return fail(fmt.Errorf("the agent sent %v, which was not asked for", m.Kind))
			}
			item, err := asm.Add(m)
			if err != nil {
				return fail(err)
			}
			if item == nil {
				continue
			}
			if err := Apply(set, item); err != nil {
				return fail(err)
			}
			got++
		case *wire.MetaEnd:
			if m.ID != id {
				continue
			}
			if err := asm.End(); err != nil {
				return fail(err)
			}
			if m.Items != uint64(got) {
				return fail(fmt.Errorf("the agent says it sent %d items, %d arrived", m.Items, got))
			}
			return m.Errors, nil
		case *wire.Error:
			if m.ID == id || m.ID == 0 {
				return fail(agentError(m))
			}
		default:
			s.note(fmt.Errorf("unexpected %v during a metadata transfer", msg.Type()))
		}
	}
}

// Apply adds one metadata item to set, within host/meta's bounds. The
// name of a format item was checked by proto/wire (SYSTEM/EVENT, each of
// [A-Za-z0-9_.-], not . or ..) and is checked again here.
func Apply(set *meta.Set, it *wire.MetaItem) error {
	limit := map[wire.MetaKind]int{
		wire.MetaHeaderPage: meta.MaxHeader, wire.MetaHeaderEvent: meta.MaxHeader, wire.MetaFormat: meta.MaxFormat,
		wire.MetaKallsyms: meta.MaxKallsyms, wire.MetaPrintkFormats: meta.MaxPrintk,
		wire.MetaSavedCmdlines: meta.MaxCmdlines, wire.MetaSavedTgids: meta.MaxCmdlines,
		wire.MetaTraceClock: meta.MaxLine, wire.MetaUname: meta.MaxLine,
	}[it.Kind]
	if limit == 0 {
		return fmt.Errorf("metadata item of unknown kind %v", it.Kind)
	}
	if len(it.Data) > limit {
		return fmt.Errorf("metadata %v %s: %d bytes, more than the limit of %d", it.Kind, it.Name, len(it.Data), limit)
	}
	switch it.Kind {
	case wire.MetaHeaderPage:
		set.HeaderPage = it.Data
	case wire.MetaHeaderEvent:
		set.HeaderEvent = it.Data
	case wire.MetaFormat:
		sys, ev, ok := strings.Cut(it.Name, "/")
		if !ok || !wire.ValidName(sys) || !wire.ValidName(ev) {
			return fmt.Errorf("metadata format named %q: want SYSTEM/EVENT", it.Name)
		}
		if set.Formats == nil {
			set.Formats = map[string]map[string][]byte{}
		}
		if set.Formats[sys] == nil {
			set.Formats[sys] = map[string][]byte{}
		}
		set.Formats[sys][ev] = it.Data
	case wire.MetaKallsyms:
		set.Kallsyms = it.Data
	case wire.MetaPrintkFormats:
		set.PrintkFormats = it.Data
	case wire.MetaSavedCmdlines:
		set.Cmdlines = it.Data
	case wire.MetaSavedTgids:
		set.Tgids = it.Data
	case wire.MetaTraceClock:
		set.Clock = strings.TrimSpace(string(it.Data))
	case wire.MetaUname:
		set.Uname = strings.TrimSpace(string(it.Data))
	}
	return nil
}

// SelectClock returns the text of trace_clock with the brackets moved to
// clock ("[local] global" with "global" gives "local [global]"), or text
// unchanged when clock is empty or not listed.
func SelectClock(text, clock string) string {
	if clock == "" {
		return text
	}
	fields := strings.Fields(text)
	found := false
	for i, f := range fields {
		f = strings.Trim(f, "[]")
		fields[i] = f
		if f == clock {
			fields[i], found = "["+f+"]", true
		}
	}
	if !found {
		return text
	}
	return strings.Join(fields, " ")
}

// StatsText is a CPU's per_cpu/cpuN/stats text with the counters of the
// recording: the agent's text (Raw) with its entries, overrun, commit
// overrun, dropped events and read events lines replaced by c's values
// (which count from the start of the recording, where the text counts
// from the buffer's creation), or, when it sent no text, those lines made
// from c.
func StatsText(c wire.CPUStats) []byte {
	counters := []struct {
		key string
		v   uint64
	}{{"entries", c.Entries}, {"overrun", c.Overrun}, {"commit overrun", c.CommitOverrun},
		{"dropped events", c.DroppedEvents}, {"read events", c.ReadEvents}}
	if c.Raw == "" {
		return fmt.Appendf(nil, "entries: %d\noverrun: %d\ncommit overrun: %d\nbytes: %d\ndropped events: %d\nread events: %d\n",
			c.Entries, c.Overrun, c.CommitOverrun, c.Bytes, c.DroppedEvents, c.ReadEvents)
	}
	lines := strings.SplitAfter(c.Raw, "\n")
	for i, line := range lines {
		key, _, ok := strings.Cut(line, ":")
		if !ok {
			continue
		}
		for _, k := range counters {
			if strings.TrimSpace(key) == k.key {
				nl := ""
				if strings.HasSuffix(line, "\n") {
					nl = "\n"
				}
				lines[i] = fmt.Sprintf("%s: %d%s", k.key, k.v, nl)
			}
		}
	}
	return []byte(strings.Join(lines, ""))
}

// Lost is what a CPU's counters say was lost: events the ring buffer
// overwrote (overrun, commit overrun) or could not record (dropped).
func Lost(c wire.CPUStats) uint64 { return c.Overrun + c.CommitOverrun + c.DroppedEvents }
