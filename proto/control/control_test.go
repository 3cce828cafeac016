package control

import (
	"bytes"
	"strings"
	"testing"

	"github.com/vtrace/vtrace/proto/clip"
)

// feed runs chunks through a fresh parser and renders the items compactly:
// "1" and "0" for orders, "?text" for garbage, "!" for an overlong line.
func feed(chunks ...string) string {
	var p Parser
	var out []string
	for _, c := range chunks {
		for _, it := range p.Feed([]byte(c)) {
			switch {
			case it.Long:
				out = append(out, "!")
			case it.Garbage != nil:
				out = append(out, "?"+string(it.Garbage))
			default:
				out = append(out, string(rune(it.Order)))
			}
		}
	}
	return strings.Join(out, " ")
}

func TestFeed(t *testing.T) {
	t.Parallel()
	long := strings.Repeat("x", MaxLine+1)
	for _, tc := range []struct {
		name   string
		chunks []string
		want   string
	}{
		{"one order", []string{"1\n"}, "1"},
		{"coalesced", []string{"1\n0\n"}, "1 0"},
		{"coalesced three", []string{"1\n0\n1\n"}, "1 0 1"},
		{"split", []string{"1", "\n0", "\n"}, "1 0"},
		{"split before newline", []string{"0\n1\n0", "\n"}, "0 1 0"},
		{"crlf", []string{"1\r\n0\r\n"}, "1 0"},
		{"crlf split", []string{"1\r", "\n0\r", "\n"}, "1 0"},
		{"bare order (echo -n)", []string{"1"}, "1"},
		{"bare orders over reads", []string{"1", "0"}, "1 0"},
		{"two writes of two bytes", []string{"1\n", "0\n"}, "1 0"},
		{"empty lines", []string{"\n\n1\n\r\n"}, "1"},
		{"spaces", []string{" 1 \n"}, "1"},
		{"garbage", []string{"hello\n1\n"}, "?hello 1"},
		{"garbage digits", []string{"10\n"}, "?10"},
		{"garbage split", []string{"he", "llo\n0\n"}, "?hello 0"},
		{"partial garbage waits", []string{"ab"}, ""},
		{"nul bytes", []string{"\x00\x001\n"}, "?\x00\x001"},
		{"overlong", []string{long, "1\n0\n"}, "! 0"},
		{"overlong in one read", []string{long + "\n1\n"}, "! 1"},
		{"overlong split", []string{long[:100], long[100:], "\n1\n"}, "! 1"},
		{"exactly max", []string{strings.Repeat("y", MaxLine) + "\n1\n"}, "?" + strings.Repeat("y", maxShown) + " 1"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			if got := feed(tc.chunks...); got != tc.want {
				t.Errorf("Feed(%q):\n got %q\nwant %q", tc.chunks, got, tc.want)
			}
		})
	}
}

func TestOrderString(t *testing.T) {
	t.Parallel()
	if Start.String() != "start" || Stop.String() != "stop" || Order('x').String() != "unknown" {
		t.Errorf("String: %v %v %v", Start, Stop, Order('x'))
	}
}

// reference is the parser's contract stated the plain way, for input fed in
// one read.
func reference(in string) string {
	lines := strings.Split(in, "\n")
	tail := lines[len(lines)-1]
	lines = lines[:len(lines)-1]
	var out []string
	item := func(l string) {
		s := strings.TrimSpace(l)
		switch {
		case len(l) > MaxLine:
			out = append(out, "!")
		case s == "":
		case s == "1" || s == "0":
			out = append(out, s)
		default:
			out = append(out, "?"+clip.Text(l, maxShown)) // never half a character
		}
	}
	for _, l := range lines {
		item(l)
	}
	if len(tail) > MaxLine {
		out = append(out, "!")
	} else if s := strings.TrimSpace(tail); s == "1" || s == "0" {
		out = append(out, s)
	}
	return strings.Join(out, " ")
}

func FuzzFeed(f *testing.F) {
	for _, s := range []string{"1\n", "0\n", "1\n0\n", "1", "1\r\n0\r\n", "garbage\n1\n", "\n\n", "10\n",
		strings.Repeat("z", MaxLine+3) + "\n0\n"} {
		f.Add([]byte(s), uint16(1))
	}
	f.Fuzz(func(t *testing.T, in []byte, cut uint16) {
		whole := feed(string(in))
		if want := reference(string(in)); whole != want {
			t.Fatalf("Feed(%q) = %q, reference %q", in, whole, want)
		}
		// Splitting right after a newline never changes the result.
		i := int(cut) % (len(in) + 1)
		if j := bytes.LastIndexByte(in[:i], '\n'); j >= 0 {
			if got := feed(string(in[:j+1]), string(in[j+1:])); got != whole {
				t.Fatalf("split at %d: %q, whole %q", j+1, got, whole)
			}
		}
		var p Parser
		for k := 0; k < len(in); k++ {
			p.Feed(in[k : k+1])
			if len(p.line) > MaxLine {
				t.Fatalf("line buffer grew to %d", len(p.line))
			}
		}
	})
}

func TestEnd(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name string
		in   string
		want string
	}{
		{"garbage cut by a frame", "bin", "?bin"},
		{"nothing pending", "1\n", ""},
		{"order without newline was taken by Feed", "0", ""},
		{"blank", "  ", ""},
		{"overlong, reported by Feed", strings.Repeat("x", MaxLine+1), ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			var p Parser
			p.Feed([]byte(tc.in))
			var out []string
			for _, it := range p.End() {
				if it.Garbage != nil {
					out = append(out, "?"+string(it.Garbage))
				} else {
					out = append(out, string(rune(it.Order)))
				}
			}
			if got := strings.Join(out, " "); got != tc.want {
				t.Errorf("Feed(%.20q) then End: %q, want %q", tc.in, got, tc.want)
			}
			// After End the parser starts a fresh line.
			if got := p.Feed([]byte("1\n")); len(got) != 1 || got[0].Order != Start {
				t.Errorf("after End, Feed(\"1\\n\") = %+v, want the order", got)
			}
		})
	}
}

// endsWithOrderReference states EndsWithOrder the plain way.
func endsWithOrderReference(b []byte) bool {
	s := string(b)
	if !strings.HasSuffix(s, "\n") {
		return false
	}
	s = s[:len(s)-1]
	i := strings.LastIndexByte(s, '\n')
	if i < 0 || len(s)-i-1 > MaxLine {
		return false
	}
	line := strings.TrimSpace(s[i+1:])
	return line == "1" || line == "0"
}

func TestEndsWithOrder(t *testing.T) {
	t.Parallel()
	for in, want := range map[string]bool{
		"\n1\n":             true,
		"garbage\n0\n":      true,
		"\xF6VT\x01\n1\r\n": true,
		"x\n 1 \n":          true,
		"1\n":               false, // no line start seen
		"\n1":               false, // the line is not ended
		"\n10\n":            false,
		"\n1\nx":            false,
		"\n\n":              false,
		"\n" + strings.Repeat(" ", MaxLine) + "1\n": false,
	} {
		if got := EndsWithOrder([]byte(in)); got != want || got != endsWithOrderReference([]byte(in)) {
			t.Errorf("EndsWithOrder(%.30q) = %v, want %v", in, got, want)
		}
	}
}

func FuzzEndsWithOrder(f *testing.F) {
	for _, s := range []string{"\n1\n", "a\n0\r\n", "\n1", "\n\t1 \n", "\n 11\n"} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, in []byte) {
		if got, want := EndsWithOrder(in), endsWithOrderReference(in); got != want {
			t.Fatalf("EndsWithOrder(%q) = %v, reference %v", in, got, want)
		}
	})
}
