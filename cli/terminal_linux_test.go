package cli

import (
	"strings"
	"testing"
)

// A command line tool must not talk to the user's terminal behind their
// back: no query for the background colour or the cursor position, and
// no keystroke typed ahead taken for an answer. (Bubble Tea v1 asked both
// from an init function in every program that linked it.)
func TestCommandsLeaveTheTerminalAlone(t *testing.T) {
	h := newHarness(t, rootUser)
	h.ok("new", "--base", "bb", "s")
	for _, args := range [][]string{
		{"ls"},
		{"run", "s", "--", "/bin/sh", "-c", "read x; echo got:$x"},
	} {
		s := h.onPty(t, 24, 80, h.command(args...))
		s.send("typed-ahead\r")
		if args[0] == "run" {
			s.expect("got:typed-ahead")
		}
		if status := s.exit(); status != 0 {
			t.Fatalf("incarnate %s: exit %d; screen:\n%q", strings.Join(args, " "), status, s.text())
		}
		for _, query := range []string{"\x1b]11;?", "\x1b[6n"} {
			if strings.Contains(s.text(), query) {
				t.Errorf("incarnate %s sent the terminal %q; screen:\n%q", strings.Join(args, " "), query, s.text())
			}
		}
	}
}
