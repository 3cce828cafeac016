package clip

import (
	"strings"
	"testing"
	"unicode/utf8"
)

func TestText(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		s    string
		max  int
		want string
	}{
		{"", 4, ""},
		{"abc", 3, "abc"},
		{"abcd", 3, "abc"},
		{"aé", 2, "a"},                // é is 2 bytes: not cut in two
		{"aé", 3, "aé"},               // fits
		{"ab€", 3, "ab"},              // € is 3 bytes
		{"a€b", 4, "a€"},              // cut just after it
		{"a𝄞", 4, "a"},                // a 4-byte character
		{"a\xff\xfe\xfd", 2, "a\xff"}, // invalid bytes are cut where max says
		{"a\x80\x80\x80\x80\x80", 3, "a\x80\x80"},
		{"\xe2\x82", 1, "\xe2"}, // a truncated character is no character
		{"\x00\x1b[2J", 2, "\x00\x1b"},
		{"abc", 0, ""},
	} {
		if got := Text(tc.s, tc.max); got != tc.want {
			t.Errorf("Text(%q, %d) = %q, want %q", tc.s, tc.max, got, tc.want)
		}
		if got := Text([]byte(tc.s), tc.max); string(got) != tc.want {
			t.Errorf("Text([]byte(%q), %d) = %q, want %q", tc.s, tc.max, got, tc.want)
		}
	}
}

func FuzzText(f *testing.F) {
	f.Add("aé€𝄞", 5)
	f.Add(strings.Repeat("x", 70), 64)
	f.Fuzz(func(t *testing.T, s string, max int) {
		if max < 0 {
			return
		}
		got := Text(s, max)
		if len(got) > max || !strings.HasPrefix(s, got) {
			t.Fatalf("Text(%q, %d) = %q: not a prefix of at most %d bytes", s, max, got, max)
		}
		if utf8.ValidString(s) && !utf8.ValidString(got) {
			t.Fatalf("Text(%q, %d) = %q: cut a character", s, max, got)
		}
		if len(got) < max-utf8.UTFMax+1 && len(got) < len(s) {
			t.Fatalf("Text(%q, %d) = %q: cut more than a character", s, max, got)
		}
	})
}
