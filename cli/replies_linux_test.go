package cli

import (
	"fmt"
	"strings"
	"testing"
)

// strayCheck prints what the terminal sent that nobody has read yet, as
// od shows bytes: "NAME:[]" when nothing. Busybox's tools do it as well
// as the host's.
const strayCheck = `stray() {
	stty -icanon -echo min 0 time 3
	printf '%s:[%s]\n' "$1" "$(dd bs=4k count=1 2>/dev/null | od -An -c | tr -s ' \n' ' ')"
	stty sane
}
`

// The terminal's answers to what Bubble Tea v2 asks it (tmux here
// answers the background colour it is given) reach no shell: not the
// user's when the interface quits, at once or after a shell, and not a
// shell entered from the interface. A q typed ahead quits before the
// interface has sent its query, which Bubble Tea then sends as it stops:
// mostly, for Bubble Tea may also read the q first; quickRuns tries it
// enough times that one leak at least would show.
func TestNoRepliesLeakIntoShells(t *testing.T) {
	const quickRuns = 10
	h := newHarness(t, rootUser)
	inside := "#!/bin/sh\n" + strayCheck + "stray inside\nexec /bin/sh\n"
	h.ok("new", "--base", "bb", "--shell", "/root/check", "s")
	h.ok("run", "s", "--", "/bin/sh", "-c", `printf '%s' "$1" > /root/check && chmod +x /root/check`, "sh", inside)
	ui := incarnateLine(h)
	script := fmt.Sprintf("%sfor i in $(seq %d); do read -r go; %s; stray quick; done\n%s\nstray after\nexec sleep 600\n",
		strayCheck, quickRuns, ui, ui)
	s := startScriptInTmux(t, h, "", 100, 40, script)
	s.tmux("set-option", "-g", "window-style", "bg=#102030")

	for i := 1; i <= quickRuns; i++ {
		s.typeText("go\rq") // the q for the interface, before it starts
		s.waitFor(fmt.Sprintf("quick run %d", i), func(sc string) bool { return strings.Count(sc, "quick:[") == i })
	}
	s.waitText("LAST ENTERED")
	s.keys("Enter")
	s.waitText("[s]")
	s.typeText("exit")
	s.keys("Enter")
	s.waitText("left s (exit status 0)")
	s.keys("q")
	screen := s.waitText("after:[")
	if n := strings.Count(screen, "quick:[]"); n != quickRuns {
		t.Errorf("%d quick runs of %d left nothing: the user's shell read what nobody typed; the screen:\n%s", n, quickRuns, screen)
	}
	for _, want := range []string{"inside:[]", "after:[]"} {
		if !strings.Contains(screen, want) {
			t.Errorf("want %s: the shell read what nobody typed; the screen:\n%s", want, screen)
		}
	}
}

func TestHasDA1Reply(t *testing.T) {
	for in, want := range map[string]bool{
		"\x1b[?62;22c": true, "x\x1b]11;rgb:1/2/3\a\x1b[?1;2c": true, "\x1b[?c": true,
		"\x1b[?62;22": false, "\x1b[62c": false, "": false, "\x1b[?6x2c": false,
	} {
		if got := hasDA1Reply([]byte(in)); got != want {
			t.Errorf("hasDA1Reply(%q) = %v, want %v", in, got, want)
		}
	}
}
