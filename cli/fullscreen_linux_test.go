package cli

import (
	"fmt"
	"strconv"
	"strings"
	"testing"
)

// Full-screen programs inside `incarnate enter` draw on the user's real
// terminal emulator (tmux here) as they would outside: vi and less fill
// the window row by row, follow a resize, and top lays out its table.
func TestFullScreenProgramsDraw(t *testing.T) {
	forEachUser(t, func(t *testing.T, h *harness) {
		h.ok("new", "--base", "bb", "s")
		h.ok("run", "s", "--", "/bin/sh", "-c", "seq 1 100 > /tmp/numbers")
		s := startInTmux(t, h, 80, 24, "enter", "--shell", "/bin/sh", "s")
		s.waitText("[s]")

		s.typeText("vi /tmp/numbers")
		s.keys("Enter")
		s.waitFor("vi showing rows 1-23 and its status line", func(sc string) bool {
			return rowsAre(sc, 1, 23) && strings.Contains(lines(sc)[23], "numbers")
		})
		s.typeText(":q!")
		s.keys("Enter")

		s.typeText("clear; less /tmp/numbers")
		s.keys("Enter")
		s.waitFor("less showing rows 1-23", func(sc string) bool { return rowsAre(sc, 1, 23) })
		s.tmux("resize-window", "-t", s.name, "-x", "80", "-y", "30")
		s.waitFor("less redrawn for 30 rows", func(sc string) bool { return rowsAre(sc, 1, 29) })
		s.keys("G")
		s.waitFor("less at the end, 100 down from the top row", func(sc string) bool {
			top, err := strconv.Atoi(strings.TrimSpace(lines(sc)[0]))
			return err == nil && top > 1 && rowsAre(sc, top, 101-top) && strings.Contains(lines(sc)[29], "END")
		})
		s.keys("q")

		s.typeText("clear; top")
		s.keys("Enter")
		s.waitFor("top's table with itself in it", func(sc string) bool {
			var header, self bool
			for _, l := range lines(sc) {
				f := strings.Fields(l)
				header = header || len(f) > 2 && f[0] == "PID" && f[1] == "PPID"
				self = self || header && len(f) > 0 && f[len(f)-1] == "top"
			}
			return header && self
		})
		s.keys("q")
		s.typeText("echo back-in-the-shell")
		s.keys("Enter")
		s.waitText("\nback-in-the-shell")
	})
}

func lines(screen string) []string {
	ls := strings.Split(screen, "\n")
	for len(ls) < 40 {
		ls = append(ls, "")
	}
	return ls
}

// rowsAre reports whether the screen's first n rows read first, first+1, …
func rowsAre(screen string, first, n int) bool {
	ls := lines(screen)
	for i := 0; i < n; i++ {
		if strings.TrimSpace(ls[i]) != fmt.Sprint(first+i) {
			return false
		}
	}
	return true
}
