// Package noquery stops Bubble Tea v1 from querying the terminal in every
// program that links it.
//
// Bubble Tea's init asks lipgloss's default renderer whether the
// background is dark. On a terminal that sends an OSC 11 and a cursor
// position request and reads stdin until the answer comes, up to five
// seconds: every `incarnate ls` or `run` would write escape codes to the
// user's terminal, eat keys typed ahead and, on a terminal that never
// answers, hang. Fixing the answer here, before that init runs, makes the
// query a no-op. The interface asks its own renderer when it opens, which
// is the one place the answer matters (ui.New).
//
// This works only because Go initialises packages in import-path order
// among those whose imports are done: this package depends on lipgloss
// only, and the module path (go.mod) sorts before github.com/charmbracelet/
// bubbletea. TestCommandsLeaveTheTerminalAlone in cli fails if that ever
// stops holding.
package noquery

import "github.com/charmbracelet/lipgloss"

func init() {
	lipgloss.SetHasDarkBackground(true)
}
