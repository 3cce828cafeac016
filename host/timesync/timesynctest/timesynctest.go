// Package timesynctest checks a merged host and guest timeline the way a
// user sees it: through `trace-cmd report -i host.dat -i trace.dat`, an
// independent reader, never through vtrace's own.
package timesynctest

import (
	"fmt"
	"os/exec"
	"regexp"
	"strconv"
	"strings"
	"testing"
)

// markerLine is a clock probe's marker in `trace-cmd report -t` of several
// files: "FILE: comm-pid [cpu] sec.nsec: print: ... vtrace-clock probe=ID WHAT".
var markerLine = regexp.MustCompile(`^\s*(\S+):.*\[\d+\]\s+(?:\S+\s+)?(\d+)\.(\d{9}):\s+print:.*vtrace-clock probe=(\d+) (send|recv|answer)\s*$`)

// Probe is one probe's three markers on the merged timeline, ns.
type Probe struct {
	ID                 uint64
	Send, Recv, Answer int64
}

// Merged runs `trace-cmd report -t -i host -i guest` and returns, per
// probe that left all three markers (send and answer in the host's file,
// recv in the guest's), their times on the merged timeline, in the order
// of the probes, and the number of marker lines read.
func Merged(t testing.TB, traceCmd, host, guest string) ([]Probe, int) {
	t.Helper()
	cmd := exec.Command(traceCmd, "report", "-t", "-i", host, "-i", guest)
	var stderr strings.Builder
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("trace-cmd report -t -i %s -i %s: %v\n%s", host, guest, err, stderr.String())
	}
	byID := map[uint64]*Probe{}
	var order []uint64
	lines := 0
	hostName, guestName := base(host), base(guest)
	for _, line := range strings.Split(string(out), "\n") {
		m := markerLine.FindStringSubmatch(line)
		if m == nil {
			continue
		}
		lines++
		sec, _ := strconv.ParseInt(m[2], 10, 64)
		ns, _ := strconv.ParseInt(m[3], 10, 64)
		id, _ := strconv.ParseUint(m[4], 10, 64)
		ts := sec*1e9 + ns
		p := byID[id]
		if p == nil {
			p = &Probe{ID: id}
			byID[id] = p
			order = append(order, id)
		}
		file, what := base(m[1]), m[5]
		switch {
		case what == "recv" && file == guestName:
			p.Recv = ts
		case what == "send" && file == hostName:
			p.Send = ts
		case what == "answer" && file == hostName:
			p.Answer = ts
		default:
			t.Errorf("marker %q in %s", what, file)
		}
	}
	var probes []Probe
	for _, id := range order {
		if p := byID[id]; p.Send != 0 && p.Recv != 0 && p.Answer != 0 {
			probes = append(probes, *p)
		}
	}
	return probes, lines
}

func base(name string) string {
	name = strings.TrimSuffix(name, ":")
	if i := strings.LastIndexByte(name, '/'); i >= 0 {
		name = name[i+1:]
	}
	return name
}

// Causality checks that every guest marker lies between its probe's two
// host markers, and returns the smallest slack on either side (ns) and a
// description of the first violations.
func Causality(probes []Probe) (minSlack int64, bad []string) {
	minSlack = 1 << 62
	for _, p := range probes {
		before, after := p.Recv-p.Send, p.Answer-p.Recv
		minSlack = min(minSlack, before, after)
		if before < 0 || after < 0 {
			if len(bad) < 10 {
				bad = append(bad, fmt.Sprintf("probe %d: host send %d, guest recv %d, host answer %d", p.ID, p.Send, p.Recv, p.Answer))
			}
		}
	}
	return minSlack, bad
}

// rawMarker is a guest marker in `trace-cmd report --raw-ts` of one file.
var rawMarker = regexp.MustCompile(`\[\d+\]\s+(?:\S+\s+)?(\d+):\s+print:.*vtrace-clock probe=(\d+) recv\s*$`)

// GuestStamps runs `trace-cmd report --raw-ts -i guest` and returns each
// probe's recv marker as the guest's ring buffer stamped it, before any
// shift: a time of the guest's own clock.
func GuestStamps(t testing.TB, traceCmd, guest string) map[uint64]int64 {
	t.Helper()
	out, err := exec.Command(traceCmd, "report", "--raw-ts", "-i", guest).Output()
	if err != nil {
		t.Fatalf("trace-cmd report --raw-ts -i %s: %v", guest, err)
	}
	stamps := map[uint64]int64{}
	var unread []string
	for _, line := range strings.Split(string(out), "\n") {
		if m := rawMarker.FindStringSubmatch(line); m != nil {
			ts, _ := strconv.ParseInt(m[1], 10, 64)
			id, _ := strconv.ParseUint(m[2], 10, 64)
			stamps[id] = ts
		} else if strings.Contains(line, "vtrace-clock") && len(unread) < 3 {
			unread = append(unread, line)
		}
	}
	if len(unread) > 0 {
		t.Errorf("trace-cmd report --raw-ts -i %s: marker lines not understood:\n%s", guest, strings.Join(unread, "\n"))
	}
	return stamps
}
