package cli

import (
	"errors"
	"fmt"
	"os"
	"time"

	"github.com/charmbracelet/x/ansi"
	"golang.org/x/sys/unix"
	"golang.org/x/term"

	"github.com/incarnate-dev/incarnate/session"
)

// Bubble Tea v2 asks the terminal things as it starts (synchronized
// output, keyboard enhancements; the interface asks its background
// colour) and reads the answers as input while it runs. An answer that
// comes once it has stopped reading, because the interface quit or
// entered a shell first, stays in the terminal's input for whoever
// reads next: the shell gets "^[]11;rgb:…" as if it had been typed. It
// is no rare race: Bubble Tea writes what queries it still holds as it
// lets go of the terminal, so a quick q or enter sends one just then.

// replyWait bounds the wait for the terminal's answer to the last
// query: a terminal answers at once, and one that never does must not
// keep the user waiting long.
const replyWait = 500 * time.Millisecond

// splitReplies takes the terminal's answers out of what was read from
// it, and reports whether the answer to DA1 was among them. What is left
// was typed: keys, escape sequences of keys (which never carry CSI's
// private markers) included, and a sequence cut off at the end, for an
// answer comes whole before the next one. By hand, as a regexp would be
// compiled at every start of the binary.
func splitReplies(b []byte) (typed []byte, da1 bool) {
	for i := 0; i < len(b); {
		n, isDA1 := replyAt(b[i:])
		if n == 0 {
			typed = append(typed, b[i])
			i++
			continue
		}
		da1 = da1 || isDA1
		i += n
	}
	return typed, da1
}

// replyAt is the length of the terminal's answer b starts with (0 when it
// does not start with a whole one), and whether it answers DA1. Answers
// are control strings (OSC: ESC ], DCS: ESC P, APC: ESC _, PM: ESC ^,
// SOS: ESC X), ended by ST or, for OSC, BEL; or CSI with a private
// marker: ESC [ ? … c for DA1, ESC [ ? … $ y for a mode, ESC [ ? … u
// for keyboard flags, ESC [ > … c for DA2.
func replyAt(b []byte) (n int, da1 bool) {
	if len(b) < 3 || b[0] != 0x1b {
		return 0, false
	}
	switch b[1] {
	case ']', 'P', '_', '^', 'X':
		for j := 2; j < len(b); j++ {
			if b[1] == ']' && b[j] == 0x07 {
				return j + 1, false
			}
			if b[j] == 0x1b && j+1 < len(b) && b[j+1] == '\\' {
				return j + 2, false
			}
		}
		return 0, false
	case '[':
		if b[2] < '<' || b[2] > '?' {
			return 0, false // no private marker: a key
		}
		for j := 3; j < len(b); j++ {
			if b[j] >= 0x40 && b[j] <= 0x7e {
				return j + 1, b[2] == '?' && b[j] == 'c'
			}
			if b[j] < 0x20 || b[j] > 0x3f {
				return 0, false
			}
		}
	}
	return 0, false
}

// drainReplies reads the terminal's answers to the queries sent before
// and returns what else it read, which the user typed meanwhile, for
// whoever reads next (pushBack, or the shell's pty): it asks for the
// device attributes (DA1), which every terminal answers, and in order,
// and reads until that answer came. in must be in raw mode (holdRaw),
// else the line discipline holds the answers back, and echoes them on
// the screen.
func drainReplies(in, out *os.File) (typed []byte) {
	fd := int(in.Fd())
	if !term.IsTerminal(fd) {
		return nil
	}
	if _, err := out.WriteString(ansi.RequestPrimaryDeviceAttributes); err != nil {
		return nil
	}
	var got []byte
	defer func() { typed, _ = splitReplies(got) }()
	buf := make([]byte, 4096)
	for deadline := time.Now().Add(replyWait); ; {
		if _, da1 := splitReplies(got); da1 {
			return
		}
		left := time.Until(deadline)
		if left <= 0 {
			return
		}
		ready, err := unix.Poll([]unix.PollFd{{Fd: int32(fd), Events: unix.POLLIN}}, int(left/time.Millisecond)+1)
		if errors.Is(err, unix.EINTR) || err == nil && ready == 0 {
			continue
		}
		if err != nil {
			return
		}
		n, err := unix.Read(fd, buf)
		if errors.Is(err, unix.EINTR) || errors.Is(err, unix.EAGAIN) {
			continue
		}
		if err != nil || n == 0 {
			return
		}
		got = append(got, buf[:n]...)
	}
}

// pushBack puts typed back in the terminal's input, for the program that
// reads it after incarnate: the user's shell, once the interface is
// gone. TIOCSTI is the only way into another program's input; kernels
// may refuse it (dev.tty.legacy_tiocsti = 0, for all but CAP_SYS_ADMIN),
// and then the keys are lost, which the user is told.
func pushBack(in *os.File, typed []byte) {
	for i := range typed {
		// TIOCSTI takes a pointer to one byte: the string's first.
		if err := unix.IoctlSetString(int(in.Fd()), unix.TIOCSTI, string(typed[i:i+1])); err != nil {
			session.Notice(fmt.Sprintf("what was typed as the interface closed (%d bytes) is lost: this kernel does not let a program hand keys back to the terminal (TIOCSTI: %v)", len(typed)-i, err))
			return
		}
	}
}

// holdRaw puts the terminal in in raw mode until the returned function
// is called. Bubble Tea restores the mode it found whenever it lets go
// of the terminal, to hand it to a shell or at its end: raw, an answer
// that comes then is neither echoed nor held for a line, and
// drainReplies reads it.
func holdRaw(in *os.File) (restore func()) {
	fd := int(in.Fd())
	old, err := term.MakeRaw(fd)
	if err != nil {
		return func() {}
	}
	return func() { _ = term.Restore(fd, old) }
}
