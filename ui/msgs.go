package ui

import (
	"time"

	"github.com/incarnate-dev/incarnate/layers"
	"github.com/incarnate-dev/incarnate/session"
)

// row is one session as the list shows it.
type row struct {
	*session.Entry
	Shells int
}

func (r row) name() string { return r.Meta.Name }

// entriesMsg is a fresh listing of the store.
type entriesMsg struct {
	rows []row
	err  error
	took time.Duration
}

// basesMsg is a fresh listing of the bases.
type basesMsg struct {
	bases []*layers.Base
	err   error
}

// diffKey names one state of a session: its diff is cached under it.
type diffKey struct {
	name            string
	dirMtime, entry int64
}

func keyOf(r *row) diffKey {
	return diffKey{r.Meta.Name, r.DirMtime, r.EnteredMtime}
}

// diffWantMsg asks for the diff of a session that has stayed chosen a
// moment (scrolling past a row does not start a walk of its upper dir).
type diffWantMsg struct{ key diffKey }

// diffMsg is a session's diff.
type diffMsg struct {
	key     diffKey
	changes []session.Change
	err     error
}

// taskStartMsg and taskDoneMsg bracket a slow operation run as a
// command (gh-dash's task pattern): the spinner runs between them.
type taskStartMsg struct {
	id   int64
	what string
	prog *progressLine
}

type taskDoneMsg struct {
	id  int64
	msg string // said in the status line on success
	err error
	// then runs after the list is refreshed (a new session is chosen).
	selectName string
}

// execDoneMsg ends a shell entered with tea.Exec.
type execDoneMsg struct {
	name    string
	status  int
	stopped string // ShellCommand.Stopped
	err     error
}

// tickMsg refreshes the list now and then: shells come and go.
type tickMsg struct{}

// previewMsg is the first lines of a file in a session's upper dir.
type previewMsg struct {
	path  string
	text  string
	err   error
	patch bool // text is a unified diff
}

// planMsg is what applying a session would do, path by path.
type planMsg struct {
	name  string
	steps []session.Step
	err   error
}

// applyAskMsg asks for the confirmation of an apply of paths (all when
// none) of session name.
type applyAskMsg struct {
	name  string
	paths []string
}

// quitMsg asks to quit: at once, unless work is still running (Model.quit).
type quitMsg struct{}
