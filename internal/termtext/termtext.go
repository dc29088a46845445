// Package termtext makes text from a session or an image safe to put on
// a terminal. A file name, a file's content or an error naming a path can
// carry control characters: an OSC 52 clipboard write, a title change, a
// CSI that moves the cursor or fakes a prompt, or a bidi override that
// makes a path read as another. Like less and git, incarnate shows them
// instead: every rune that is not printable becomes an escape.
package termtext

import (
	"strconv"
	"strings"
	"unicode"
	"unicode/utf8"
)

// Visible returns s with every control character, DEL, C1 control, bidi
// or other format character and invalid byte written as an escape (\x1b,
// \u009b, \u202e, \xff), the rest as it is. One line in, one line out.
func Visible(s string) string { return escape(s, "") }

// VisibleText is Visible for text of several lines: newlines and tabs
// stay as they are.
func VisibleText(s string) string { return escape(s, "\n\t") }

// Safe reports whether Visible leaves s as it is.
func Safe(s string) bool { return firstUnsafe(s, "") < 0 }

func escape(s, keep string) string {
	i := firstUnsafe(s, keep)
	if i < 0 {
		return s
	}
	var b strings.Builder
	b.Grow(len(s) + 16)
	b.WriteString(s[:i])
	for i < len(s) {
		r, n := utf8.DecodeRuneInString(s[i:])
		switch {
		case r == utf8.RuneError && n == 1:
			b.WriteString(`\x`)
			b.WriteString(strconv.FormatUint(uint64(s[i])|0x100, 16)[1:])
		case printable(r, keep):
			b.WriteString(s[i : i+n])
		default:
			// QuoteRune's escape, without its quotes: \x1b, \n, \u202e.
			q := strconv.QuoteRuneToASCII(r)
			b.WriteString(q[1 : len(q)-1])
		}
		i += n
	}
	return b.String()
}

// firstUnsafe is the byte index of the first rune Visible escapes, or -1.
func firstUnsafe(s, keep string) int {
	for i, r := range s {
		if r == utf8.RuneError {
			if _, n := utf8.DecodeRuneInString(s[i:]); n == 1 {
				return i
			}
		}
		if !printable(r, keep) {
			return i
		}
	}
	return -1
}

// printable: letters, marks, numbers, punctuation, symbols and the ASCII
// space (unicode.IsPrint); never a control or format character.
func printable(r rune, keep string) bool {
	return unicode.IsPrint(r) || (r < utf8.RuneSelf && strings.ContainsRune(keep, r))
}
