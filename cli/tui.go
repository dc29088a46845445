package cli

import (
	"fmt"
	"io"
	"os"

	tea "charm.land/bubbletea/v2"
	"github.com/charmbracelet/colorprofile"
	"golang.org/x/term"

	"github.com/incarnate-dev/incarnate/session"
	"github.com/incarnate-dev/incarnate/ui"
)

// tuiFlags are the global flags only the interface reads.
type tuiFlags struct {
	theme   string
	noColor bool
}

// cmdTUI opens the interface: `incarnate` with no command, on a terminal.
func cmdTUI(c *ctx, f tuiFlags) error {
	st, err := c.openStore()
	if err != nil {
		return err
	}
	noColor, profile := c.colours(f)
	m := ui.New(ui.Options{
		Store:     st,
		ConfigDir: ui.ConfigDir(),
		Theme:     f.theme,
		NoColor:   noColor,
		Profile:   profile,
		Shell: func(name, shell string) ui.ShellCommand {
			return &shellCommand{st: st, name: name, shell: shell, in: c.stdin, out: c.stdout}
		},
	})
	// Raw from before Bubble Tea starts until its last answers are read.
	restore := holdRaw(c.stdin)
	defer restore()
	// The styles are built for the profile (ui.New): Bubble Tea is told
	// the same one, not left to detect its own.
	p := tea.NewProgram(m, tea.WithInput(c.stdin), tea.WithOutput(c.stdout), tea.WithColorProfile(profile))
	_, err = p.Run()
	typed := drainReplies(c.stdin, c.stdout) // before the user's shell reads them
	// Back in the user's own mode first, so that what was typed meanwhile
	// is taken as if typed now.
	restore()
	pushBack(c.stdin, typed)
	return err
}

// colours says whether the interface is to draw without colours
// (--no-color, NO_COLOR set), and the colour profile it draws for.
func (c *ctx) colours(f tuiFlags) (noColor bool, p colorprofile.Profile) {
	_, noColor = os.LookupEnv("NO_COLOR")
	if noColor || f.noColor {
		return true, colorprofile.ASCII
	}
	return false, colorprofile.Detect(c.stdout, os.Environ())
}

// isTerminal reports whether the user is at a terminal on both ends:
// only then does a bare `incarnate` open the interface.
func (c *ctx) isTerminal() bool {
	return term.IsTerminal(int(c.stdin.Fd())) && term.IsTerminal(int(c.stdout.Fd()))
}

// shellCommand is a shell in a session, handed the terminal by
// tea.Exec: Bubble Tea has released it (main screen, and the raw mode
// cmdTUI holds), Run drops the answers to Bubble Tea's queries, and
// attachTTY puts it in raw mode for the shell, reads it through a
// cancellable reader and restores it on every way out, so the list gets
// back a terminal exactly as it left it, with no keystroke eaten.
type shellCommand struct {
	st          *session.Store
	name, shell string
	in, out     *os.File
	status      int
	stopped     string // as session.StoppedNote says it
}

func (s *shellCommand) SetStdin(r io.Reader) {
	if f, ok := r.(*os.File); ok {
		s.in = f
	}
}

func (s *shellCommand) SetStdout(w io.Writer) {
	if f, ok := w.(*os.File); ok {
		s.out = f
	}
}

func (s *shellCommand) SetStderr(io.Writer) {}

func (s *shellCommand) Run() (err error) {
	typed := drainReplies(s.in, s.out) // the shell is not to read them, but what was typed
	fmt.Fprintf(s.out, "incarnate: entering %s — exit the shell to return to the list\r\n", s.name)
	s.status, s.stopped, err = attachTTY(s.st, s.name, shellOptions(s.st, s.name, s.shell, nil), s.in, s.out, typed)
	return err
}

func (s *shellCommand) ExitStatus() int { return s.status }

func (s *shellCommand) Stopped() string { return s.stopped }
