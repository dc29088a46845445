package sandbox

import (
	"errors"
	"io"
	"os"
	"os/signal"
	"time"

	"github.com/creack/pty"
	"github.com/muesli/cancelreader"
	"golang.org/x/sys/unix"
	"golang.org/x/term"
)

// Attach connects the user's terminal (in, out) to a process's pty master
// until the process exits, and returns its exit status. The terminal is in
// raw mode meanwhile, so every key (^C, ^Z included) reaches the
// session's own line discipline, and it is restored on every way out,
// SIGTERM and SIGHUP to incarnate included. Window size changes follow.
func Attach(conn *Conn, master *os.File, in, out *os.File) (int, error) {
	defer master.Close()
	if term.IsTerminal(int(in.Fd())) {
		old, err := term.MakeRaw(int(in.Fd()))
		if err != nil {
			return 0, err
		}
		defer term.Restore(int(in.Fd()), old)
		_ = pty.InheritSize(in, master)
	}
	// Resizes, and the signals that end incarnate itself.
	sigs := make(chan os.Signal, 4)
	signal.Notify(sigs, unix.SIGWINCH, unix.SIGTERM, unix.SIGHUP, unix.SIGINT)
	defer signal.Stop(sigs)

	// stdin through a cancellable reader: when the process is gone, the
	// copy must stop without eating the user's next keystroke. What epoll
	// cannot watch (a regular file, /dev/null) is read plainly: it never
	// blocks for long, and no keystroke of the user's is at stake.
	input, err := cancelreader.NewReader(in)
	if err != nil {
		input = plainReader{in}
	}
	defer input.Close()
	tty := term.IsTerminal(int(in.Fd()))
	// The copy must have stopped before the reader is closed: a copy
	// still between two reads would wait on an epoll fd number that the
	// next reader of this terminal (the TUI's, after tea.Exec) may
	// already have reused, and steal that reader's next keystroke.
	copied := make(chan struct{})
	finished := make(chan struct{})
	defer close(finished)
	go func() {
		_, err := io.Copy(master, input)
		if err == nil && !tty {
			go endOfInput(master, finished)
		}
		close(copied)
	}()
	stopInput := func() {
		input.Cancel()
		select {
		case <-copied:
		case <-time.After(time.Second): // a write stuck on a full pty
		}
	}
	output := make(chan struct{})
	go func() { _, _ = io.Copy(out, master); close(output) }()

	exited := make(chan waitResult, 1)
	go func() { code, err := conn.Wait(); exited <- waitResult{code, err} }()
	for {
		select {
		case sig := <-sigs:
			if sig == unix.SIGWINCH {
				_ = pty.InheritSize(in, master)
				continue
			}
			// Hanging up the master sends the shell SIGHUP, like closing
			// a terminal window.
			conn.Close()
			stopInput()
			return 128 + int(sig.(unix.Signal)), nil
		case r := <-exited:
			stopInput()
			drain(master, output)
			return r.code, r.err
		}
	}
}

// endOfInput passes the end of piped input on as the terminal's EOF
// character, and again every so often until the process is done: an EOF
// typed while a program starts can be lost (a shell that sets up its line
// editor drops what the line discipline held), and a closed pipe too
// gives EOF to every read after the first.
func endOfInput(master *os.File, finished chan struct{}) {
	eof := []byte{4, 4} // twice, in case a line is unfinished
	for {
		if _, err := master.Write(eof); err != nil {
			return
		}
		select {
		case <-finished:
			return
		case <-time.After(100 * time.Millisecond):
		}
		eof = eof[:1]
	}
}

// plainReader is a cancelreader.CancelReader that cannot cancel.
type plainReader struct{ *os.File }

func (plainReader) Cancel() bool { return false }
func (plainReader) Close() error { return nil }

type waitResult struct {
	code int
	err  error
}

// drain lets the last output through: everything the process wrote is in
// the pty already, and reads end with EIO once no one holds the slave. A
// background job still holding it must not keep incarnate waiting.
func drain(master *os.File, done chan struct{}) {
	if err := master.SetReadDeadline(time.Now().Add(200 * time.Millisecond)); err != nil && !errors.Is(err, os.ErrNoDeadline) {
		return
	}
	<-done
}
