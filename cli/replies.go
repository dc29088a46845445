package cli

import (
	"errors"
	"os"
	"time"

	"github.com/charmbracelet/x/ansi"
	"golang.org/x/sys/unix"
	"golang.org/x/term"
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

// hasDA1Reply reports whether b holds a terminal's answer to DA1 (its
// primary device attributes): ESC [ ? digits and semicolons, then c. By
// hand, as a regexp would be compiled at every start of the binary.
func hasDA1Reply(b []byte) bool {
	for i := 0; i+3 <= len(b); i++ {
		if b[i] != 0x1b || b[i+1] != '[' || b[i+2] != '?' {
			continue
		}
		j := i + 3
		for j < len(b) && (b[j] >= '0' && b[j] <= '9' || b[j] == ';') {
			j++
		}
		if j < len(b) && b[j] == 'c' {
			return true
		}
	}
	return false
}

// drainReplies reads and drops the terminal's answers to the queries
// sent before: it asks for the device attributes (DA1), which every
// terminal answers, and in order, and reads until that answer came. A
// key typed in that moment is dropped with them. in must be in raw mode
// (holdRaw), else the line discipline holds the answers back, and echoes
// them on the screen.
func drainReplies(in, out *os.File) {
	fd := int(in.Fd())
	if !term.IsTerminal(fd) {
		return
	}
	if _, err := out.WriteString(ansi.RequestPrimaryDeviceAttributes); err != nil {
		return
	}
	var got []byte
	buf := make([]byte, 4096)
	for deadline := time.Now().Add(replyWait); !hasDA1Reply(got); {
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
