package guest

import (
	"bufio"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"

	"github.com/vtrace/vtrace/proto/wire"
)

// maxStatsFile bounds what is read of one per_cpu/cpuN/stats (a few
// hundred bytes in practice); the protocol's strings stop at 4 KiB.
const maxStatsFile = wire.MaxString

// ParseCPUStats reads the text of a per_cpu/cpuN/stats file. Times ("oldest
// event ts:  5153.034283") become nanoseconds when the clock counts in
// seconds with a fraction, and stay as they are for counter clocks. Lines
// it does not know are kept only in Raw. Raw is the text itself, clipped to
// what the protocol carries.
func ParseCPUStats(cpu int, text string) (wire.CPUStats, error) {
	st := wire.CPUStats{CPU: uint32(cpu), Raw: clipText(text, maxStatsFile)}
	sc := bufio.NewScanner(strings.NewReader(text))
	for sc.Scan() {
		key, val, ok := strings.Cut(sc.Text(), ":")
		if !ok {
			continue
		}
		val = strings.TrimSpace(val)
		var p *uint64
		var parse func(string) (uint64, error) = parseCount
		switch strings.TrimSpace(key) {
		case "entries":
			p = &st.Entries
		case "overrun":
			p = &st.Overrun
		case "commit overrun":
			p = &st.CommitOverrun
		case "bytes":
			p = &st.Bytes
		case "dropped events":
			p = &st.DroppedEvents
		case "read events":
			p = &st.ReadEvents
		case "oldest event ts":
			p, parse = &st.OldestEventTS, parseStatsTime
		case "now ts":
			p, parse = &st.NowTS, parseStatsTime
		default:
			continue
		}
		v, err := parse(val)
		if err != nil {
			return st, fmt.Errorf("parse cpu %d stats: %s: %w", cpu, strings.TrimSpace(key), err)
		}
		*p = v
	}
	return st, nil
}

func parseCount(s string) (uint64, error) { return strconv.ParseUint(s, 10, 64) }

// parseStatsTime reads "SECONDS.MICROSECONDS" as nanoseconds, or a plain
// number (a counter clock) as is.
func parseStatsTime(s string) (uint64, error) {
	sec, frac, ok := strings.Cut(s, ".")
	if !ok {
		return strconv.ParseUint(s, 10, 64)
	}
	n, err := strconv.ParseUint(sec, 10, 64)
	if err != nil {
		return 0, err
	}
	if len(frac) == 0 || len(frac) > 9 {
		return 0, fmt.Errorf("time %q: want SECONDS.FRACTION", s)
	}
	f, err := strconv.ParseUint(frac, 10, 64)
	if err != nil {
		return 0, err
	}
	for i := len(frac); i < 9; i++ {
		f *= 10
	}
	if n > (1<<64-1-f)/1e9 {
		return 0, fmt.Errorf("time %q: out of range", s)
	}
	return n*1e9 + f, nil
}

// clipText makes s fit the protocol's free text: valid UTF-8 without
// control characters other than newline and tab, at most max bytes.
func clipText(s string, max int) string {
	s = strings.ToValidUTF8(s, "?")
	s = strings.Map(func(r rune) rune {
		if r == '\n' || r == '\t' || r >= 0x20 && r != 0x7f && !(r >= 0x80 && r < 0xa0) {
			return r
		}
		return '?'
	}, s)
	if len(s) <= max {
		return s
	}
	s = s[:max]
	for len(s) > 0 && !utf8RuneStart(s[len(s)-1]) {
		s = s[:len(s)-1]
	}
	if len(s) > 0 && s[len(s)-1] >= 0x80 {
		s = s[:len(s)-1] // a rune cut in two
	}
	return s
}

func utf8RuneStart(b byte) bool { return b&0xC0 != 0x80 }

// readCPUStats reads every CPU's stats file in dir (a tracefs root or
// instance), adding the agent's own counters.
func readCPUStats(dir string, workers []*worker) ([]wire.CPUStats, error) {
	out := make([]wire.CPUStats, 0, len(workers))
	for _, w := range workers {
		path := perCPUFile(dir, w.cpu, "stats")
		b, err := readSmall(path, maxStatsFile)
		if err != nil {
			return nil, err
		}
		st, err := ParseCPUStats(w.cpu, string(b))
		if err != nil {
			return nil, fmt.Errorf("%s: %w", path, err)
		}
		st.BytesSent = uint64(w.sent.Load())
		st.PagesSent = st.BytesSent / uint64(w.page)
		out = append(out, st)
	}
	return out, nil
}

// readSmall reads at most max bytes of a file whose size stat does not
// tell (tracefs and /proc files say 0).
func readSmall(path string, max int) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, int64(max)+1))
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", path, err)
	}
	if len(b) > max {
		return nil, fmt.Errorf("read %s: over %d bytes", path, max)
	}
	return b, nil
}
