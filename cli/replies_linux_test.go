package cli

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"sync"
	"testing"

	"github.com/charmbracelet/x/ansi"
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

// What the user types while the drain waits for the terminal's answer
// reaches what comes next: the shell entered from the interface, and
// the user's own shell once the interface has quit. The terminal here
// types before it answers DA1, every time, which a real one does only
// when the keys come in that moment.
func TestTypedDuringDrainIsKept(t *testing.T) {
	h := newHarness(t, rootUser)
	h.ok("new", "--base", "bb", "s")
	var mu sync.Mutex
	typed := []string{"echo in-$((6*7))\r", "later-typed\r"}
	answer := func(f *os.File, out []byte) {
		answerQueries(f, out)
		for i := bytes.Count(out, []byte(ansi.RequestPrimaryDeviceAttributes)); i > 0; i-- {
			mu.Lock()
			if len(typed) > 0 {
				_, _ = f.Write([]byte(typed[0]))
				typed = typed[1:]
			}
			mu.Unlock()
			_, _ = f.Write([]byte("\x1b[?62;22c"))
		}
	}
	outer := exec.Command("/bin/sh", "-c", incarnateLine(h)+"; read -r line; echo \"got:[$line]\"")
	outer.Env = h.env()
	s := h.onPtyAnswering(t, 30, 100, outer, answer)
	s.expect("ENTERED")
	s.send("\r")
	s.expect("in-42")
	s.send("exit\r")
	s.expect("left s")
	s.send("q")
	s.expect("got:[later-typed]")
}

// The terminal's answers are taken out of what the drain read, and the
// rest, typed keys and their escape sequences, is kept in order.
func TestSplitReplies(t *testing.T) {
	for _, tc := range []struct {
		in, typed string
		da1       bool
	}{
		{"\x1b[?62;22c", "", true},
		{"x\x1b]11;rgb:1/2/3\a\x1b[?1;2c", "x", true},
		{"\x1b[?c", "", true},
		{"\x1b[?62;22", "\x1b[?62;22", false}, // cut off: not an answer yet
		{"\x1b[62c", "\x1b[62c", false},
		{"", "", false},
		{"\x1b[?6x2c", "2c", false},
		{"l\x1b]11;rgb:10/20/30\x1b\\s\x1b[?2026;2$y\r\x1b[?1u\x1b[>0;276;0c\x1b[?62;22cxy", "ls\rxy", true},
		{"\x1b[A\x1b[1;5C\x1bOP\x1b\x1b[200~p\x1b[201~é", "\x1b[A\x1b[1;5C\x1bOP\x1b\x1b[200~p\x1b[201~é", false},
		{"\x1bP>|tmux 3.3a\x1b\\q", "q", false},
	} {
		typed, da1 := splitReplies([]byte(tc.in))
		if string(typed) != tc.typed || da1 != tc.da1 {
			t.Errorf("splitReplies(%q) = %q, %v; want %q, %v", tc.in, typed, da1, tc.typed, tc.da1)
		}
	}
}
