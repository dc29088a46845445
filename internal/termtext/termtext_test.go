package termtext

import (
	"strings"
	"testing"
	"unicode"
	"unicode/utf8"
)

func TestVisible(t *testing.T) {
	for _, tt := range []struct{ in, want string }{
		{"plain/path ü.txt", "plain/path ü.txt"},
		{"a\nb", `a\nb`},
		{"\x1b]52;c;Y3VybA==\x07", `\x1b]52;c;Y3VybA==\a`},
		{"\u009b31m", `\u009b31m`},
		{"evil\u202ecod.exe", `evil\u202ecod.exe`},
		{"\u2066x\u2069", `\u2066x\u2069`},
		{"del\x7f", `del\x7f`},
		{"bad\xffbyte", `bad\xffbyte`},
		{"zero\u200bwidth", `zero\u200bwidth`},
	} {
		if got := Visible(tt.in); got != tt.want {
			t.Errorf("Visible(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
	if got := VisibleText("line 1\n\tline 2\x1b[2J"); got != "line 1\n\tline 2\\x1b[2J" {
		t.Errorf("VisibleText kept or lost the wrong things: %q", got)
	}
}

// Whatever goes in, nothing but printable runes comes out (newlines and
// tabs too, from VisibleText), and what was printable stays in order.
func FuzzVisible(f *testing.F) {
	for r := rune(0); r < 0xa0; r++ {
		f.Add("x" + string(r) + "y")
	}
	for _, s := range []string{"\u202a\u202b\u202c\u202d\u202e", "\u2066\u2067\u2068\u2069", "\xc3", "\xed\xa0\x80", "\U0010ffff"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		for _, tt := range []struct {
			out  string
			keep string
		}{{Visible(s), ""}, {VisibleText(s), "\n\t"}} {
			if !utf8.ValidString(tt.out) {
				t.Fatalf("%q gave invalid UTF-8 %q", s, tt.out)
			}
			for _, r := range tt.out {
				if !unicode.IsPrint(r) && !strings.ContainsRune(tt.keep, r) {
					t.Fatalf("%q gave %q, with %U", s, tt.out, r)
				}
			}
		}
		if Safe(s) != (Visible(s) == s) {
			t.Fatalf("Safe(%q) = %v, but Visible gives %q", s, Safe(s), Visible(s))
		}
	})
}
