// Package clip bounds text that came from elsewhere (a peer, a file, the
// kernel) before it is quoted in an error, logged or sent on. It is pure Go.
package clip

import "unicode/utf8"

// Text returns s cut to at most max bytes. The cut never falls inside a
// valid UTF-8 character: it moves back to the character's first byte.
// Invalid bytes are kept as they are (quote the result with %q to show
// them); wire.FreeText makes text printable as well.
func Text[T ~string | ~[]byte](s T, max int) T {
	if len(s) <= max {
		return s
	}
	// s[max] is the first byte cut off. When it continues a character,
	// go back to that character's first byte (at most UTFMax-1 bytes back)
	// and cut there, unless the bytes are not valid UTF-8 anyway.
	cut := max
	for i := max; i >= 0 && max-i < utf8.UTFMax; i-- {
		if utf8.RuneStart(s[i]) {
			if r, size := decodeRune(s[i:]); !(r == utf8.RuneError && size == 1) && i+size > max {
				cut = i
			}
			break
		}
	}
	return s[:cut]
}

func decodeRune[T ~string | ~[]byte](s T) (rune, int) {
	return utf8.DecodeRuneInString(string(s[:min(len(s), utf8.UTFMax)]))
}
