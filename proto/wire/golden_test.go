package wire

import (
	"bufio"
	"bytes"
	"encoding/hex"
	"flag"
	"fmt"
	"maps"
	"os"
	"slices"
	"strings"
	"testing"
)

var update = flag.Bool("update", false, "rewrite testdata/messages.golden from the encoder")

// goldenMessages are the samples plus messages whose zero values, empty
// strings and CPU 0 entries show which fields are left out and which are
// always written.
func goldenMessages() map[string]Message {
	m := samples()
	m["zero-hello-reply-cpu0"] = &HelloReply{Version: 1, CPUs: []uint32{0, 2}}
	m["zero-start"] = &Start{}
	m["zero-status"] = &Status{}
	m["zero-stats-cpu0"] = &Stats{CPUs: []CPUStats{{}}}
	m["zero-meta-end-empty-error"] = &MetaEnd{Errors: []string{"", "x"}}
	m["zero-meta-request-kinds"] = &MetaRequest{Items: []MetaKind{MetaUname, MetaUname}}
	m["zero-error"] = &Error{}
	m["zero-stop"] = &Stop{}
	m["zero-status-request"] = &StatusRequest{}
	m["zero-start-reply"] = &StartReply{}
	m["zero-stop-reply"] = &StopReply{}
	m["zero-meta-chunk-empty-mid"] = &MetaChunk{Kind: MetaUname, Offset: 3, Total: 9}
	m["zero-clock-reply"] = &ClockReply{}
	m["zero-filter-only"] = &Start{Settings: Settings{Filters: []Filter{{Event: "irq", Expr: "irq == 1"}}}}
	m["start-latency-only"] = &Start{ID: 5, Settings: Settings{LatencyMS: 250}}
	return m
}

// TestGolden pins the bytes of every message: testdata/messages.golden
// holds each frame in hex, one "NAME HEX" a line, sorted by name.
func TestGolden(t *testing.T) {
	t.Parallel()
	msgs := goldenMessages()
	var got bytes.Buffer
	for _, name := range slices.Sorted(maps.Keys(msgs)) {
		b, err := AppendMessage(nil, msgs[name])
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		fmt.Fprintf(&got, "%s %s\n", name, hex.EncodeToString(b))
	}
	const path = "testdata/messages.golden"
	if *update {
		if err := os.WriteFile(path, got.Bytes(), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	wantLines := lines(want)
	for i, l := range lines(got.Bytes()) {
		if i >= len(wantLines) || l != wantLines[i] {
			name, _, _ := strings.Cut(l, " ")
			t.Errorf("%s encodes differently from %s (run with -update only for a deliberate change)", name, path)
		}
	}
	if g, w := len(lines(got.Bytes())), len(wantLines); g != w {
		t.Errorf("%d messages encoded, %s holds %d", g, path, w)
	}
}

func lines(b []byte) []string {
	var out []string
	sc := bufio.NewScanner(bytes.NewReader(b))
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		out = append(out, sc.Text())
	}
	return out
}
