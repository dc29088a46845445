package ui

import (
	"fmt"
	"path/filepath"
	"time"

	"charm.land/bubbles/v2/key"
	tea "charm.land/bubbletea/v2"

	"github.com/incarnate-dev/incarnate/internal/progress"
)

// configSavedMsg reports writing config.toml.
type configSavedMsg struct{ err error }

func (m *Model) movement() movement {
	k := m.keys
	return movement{k.Up, k.Down, k.PageUp, k.PageDown, k.Home, k.End}
}

// onKey handles a key: an open dialog takes it first, then the filter
// being typed, then the view on screen.
func (m *Model) onKey(msg tea.KeyPressMsg) tea.Cmd {
	if runes := []rune(msg.Text); len(runes) > 1 {
		// Text that comes in one message ("jj") is a key each rune: a
		// paste is a message of its own (onPaste).
		cmds := make([]tea.Cmd, 0, len(runes))
		for _, r := range runes {
			cmds = append(cmds, m.onKey(tea.KeyPressMsg{Code: r, Text: string(r), Mod: msg.Mod}))
		}
		return tea.Batch(cmds...)
	}
	if msg.String() == "ctrl+c" && m.dialog == nil {
		return requestQuit
	}
	if m.dialog != nil {
		done, cmd := m.dialog.update(msg)
		if done {
			m.dialog = nil
		}
		return cmd
	}
	if m.filtering {
		return m.onFilterKey(msg)
	}
	switch m.mode {
	case modeHelp, modeLog:
		if key.Matches(msg, m.keys.Quit) && msg.String() == "ctrl+c" {
			return requestQuit
		}
		m.mode = modeList
		return nil
	case modeDiff:
		back, cmd := m.diff.update(msg)
		if back {
			m.mode, m.diff = modeList, nil
		}
		return cmd
	case modeBases:
		back, cmd := m.bases.update(msg, m)
		if back {
			m.mode, m.bases = modeList, nil
		}
		return cmd
	}
	return m.onListKey(msg)
}

// onPaste puts pasted text where text is typed: an open dialog's field,
// the filter, the diff view's filter. Elsewhere it is not keys to obey.
func (m *Model) onPaste(msg tea.PasteMsg) tea.Cmd {
	switch {
	case m.dialog != nil:
		_, cmd := m.dialog.update(msg)
		return cmd
	case m.filtering:
		var cmd tea.Cmd
		m.filter, cmd = m.filter.Update(msg)
		m.list.setFilter(m.filter.Value())
		m.updateKeys()
		return tea.Batch(cmd, m.selectionChanged())
	case m.mode == modeDiff:
		m.diff.paste(msg.Content)
	}
	return nil
}

func (m *Model) onFilterKey(msg tea.KeyPressMsg) tea.Cmd {
	switch msg.String() {
	case "esc":
		m.filtering = false
		m.filter.Blur()
		m.filter.SetValue("")
		m.list.setFilter("")
	case "enter":
		m.filtering = false
		m.filter.Blur()
	case "up", "down":
		m.list.scroll.handle(msg, m.movement())
	default:
		var cmd tea.Cmd
		m.filter, cmd = m.filter.Update(msg)
		m.list.setFilter(m.filter.Value())
		m.updateKeys()
		return tea.Batch(cmd, m.selectionChanged())
	}
	m.updateKeys()
	return m.selectionChanged()
}

func (m *Model) onListKey(msg tea.KeyPressMsg) tea.Cmd {
	k := m.keys
	if m.list.scroll.handle(msg, m.movement()) {
		return m.selectionChanged()
	}
	r := m.list.selected()
	switch {
	case key.Matches(msg, k.Quit):
		return requestQuit
	case key.Matches(msg, k.Help):
		m.mode = modeHelp
	case key.Matches(msg, k.Log):
		m.mode = modeLog
	case msg.String() == "esc" && m.list.filter != "":
		m.filter.SetValue("")
		m.list.setFilter("")
		m.updateKeys()
		return m.selectionChanged()
	case key.Matches(msg, k.Filter):
		m.filtering = true
		return m.filter.Focus()
	case key.Matches(msg, k.Sort):
		m.list.cycleSort()
		m.say(status{text: "sorted by " + m.list.sort.String()})
		return m.selectionChanged()
	case key.Matches(msg, k.Refresh):
		return tea.Batch(m.reload(), basesCmd(m.c.store))
	case key.Matches(msg, k.Theme):
		return m.cycleTheme()
	case key.Matches(msg, k.New):
		m.dialog = newNewDialog(m.c, m.baseList, m.cfg.DefaultBase, m.sessionTaken)
		return textinputBlink()
	case key.Matches(msg, k.Bases):
		m.bases = newBasesView(m.c)
		m.bases.setSize(m.width, m.height-3)
		m.bases.setBases(m.baseList, m.baseUsers(), nil)
		m.mode = modeBases
		return basesCmd(m.c.store)
	case r == nil:
		return nil
	case key.Matches(msg, k.Enter):
		return m.enter(r.name())
	case key.Matches(msg, k.Discard):
		m.dialog = m.discardDialog(r)
	case key.Matches(msg, k.Reset):
		m.dialog = m.resetDialog(r)
	case key.Matches(msg, k.Rename):
		name := r.name()
		m.dialog = newPrompt(m.c, "Rename "+name, "session", name, m.sessionTaken, func(to string) tea.Cmd {
			st := m.c.store
			return m.c.task("renaming "+name, func() (string, error) {
				return "renamed " + name + " to " + to, st.Rename(name, to, false)
			}, to)
		})
	case key.Matches(msg, k.Clone):
		name := r.name()
		m.dialog = newPrompt(m.c, "Clone "+name+" — everything it wrote is copied", "session", name+"-copy", m.sessionTaken, func(to string) tea.Cmd {
			st := m.c.store
			prog := newProgressLine()
			return m.c.taskWithProgress("cloning "+name, prog, func() (string, error) {
				_, err := st.Clone(name, to, false, prog)
				return "cloned " + name + " as " + to, err
			}, to)
		})
	case key.Matches(msg, k.Commit):
		name := r.name()
		m.dialog = newPrompt(m.c, "Commit "+name+" as a new base on "+r.Meta.Base, "base", name, m.baseTaken, func(to string) tea.Cmd {
			st := m.c.store
			prog := newProgressLine()
			return m.c.taskWithProgress("committing "+name, prog, func() (string, error) {
				_, err := st.Commit(name, to, false, prog)
				return "committed " + name + " as base " + to + " — n makes sessions on it", err
			})
		})
	case key.Matches(msg, k.Stop):
		name := r.name()
		if r.Shells == 0 {
			m.say(status{text: "nothing runs in " + name})
			return nil
		}
		st := m.c.store
		body := fmt.Sprintf("%s running in %s %s SIGTERM, and SIGKILL 5 s later; what %s not saved is lost.",
			plural(r.Shells, "process", "processes"), name, verb(r.Shells, "gets", "get"), verb(r.Shells, "it has", "they have"))
		m.dialog = newConfirm(m.c, "Stop everything in "+name+"?", body, func() tea.Cmd {
			return m.c.task("stopping "+name, func() (string, error) {
				_, err := st.Stop(name, 5*time.Second, ", from the interface")
				return "stopped everything in " + name, err
			})
		})
	case key.Matches(msg, k.Diff):
		m.diff = newDiffView(m.c, r.name())
		m.diff.setSize(m.width, m.height-3)
		m.mode = modeDiff
		if dm, ok := m.detail.diffs[keyOf(r)]; ok {
			m.diff.setChanges(dm.changes, dm.err)
		}
		return tea.Batch(diffCmd(m.c.store, keyOf(r)), planCmd(m.c.store, r.name()))
	}
	return nil
}

// textinputBlink is nothing: the dialogs' cursors do not blink.
func textinputBlink() tea.Cmd { return nil }

func (m *Model) sessionTaken(name string) bool { return m.list.find(name) != nil }

func (m *Model) baseTaken(name string) bool {
	for _, b := range m.baseList {
		if b.Name == name {
			return true
		}
	}
	return false
}

// enter hands the terminal to a shell in session name.
func (m *Model) enter(name string) tea.Cmd {
	if m.opts.Shell == nil {
		m.say(status{text: "entering a session is not available here", err: true})
		return nil
	}
	c := m.opts.Shell(name, m.cfg.Shell)
	m.say(status{text: "entering " + name + "…"})
	return tea.Exec(c, func(err error) tea.Msg {
		return execDoneMsg{name: name, status: c.ExitStatus(), stopped: c.Stopped(), err: err}
	})
}

// lost says, in whole sentences, what discarding or resetting r throws
// away.
func lost(r *row) string {
	what := fmt.Sprintf("This loses %s in %s.", progress.HumanSize(r.Stats.Size), plural(r.Stats.Changes, "changed path", "changed paths"))
	if r.Stats.Changes == 0 {
		what = "Nothing was written in it yet."
	}
	if r.Shells > 0 {
		what += fmt.Sprintf(" %s running inside %s stopped first.", plural(r.Shells, "process", "processes"), verb(r.Shells, "is", "are"))
	}
	return what
}

// verb is one or many, by n.
func verb(n int, one, many string) string {
	if n == 1 {
		return one
	}
	return many
}

func (m *Model) discardDialog(r *row) dialog {
	name, force := r.name(), r.Shells > 0
	body := fmt.Sprintf("Discard session %s and everything written in it? %s", name, lost(r))
	if r.Meta.Damaged != "" {
		body = fmt.Sprintf("Discard the damaged session %s?", name)
	}
	return newConfirm(m.c, "Discard "+name, body, func() tea.Cmd {
		st := m.c.store
		return m.c.task("discarding "+name, func() (string, error) {
			return "discarded " + name, st.Remove(name, force)
		})
	})
}

func (m *Model) resetDialog(r *row) dialog {
	name, force := r.name(), r.Shells > 0
	body := fmt.Sprintf("Reset session %s to its base %s? %s", name, r.Meta.Base, lost(r))
	return newConfirm(m.c, "Reset "+name, body, func() tea.Cmd {
		st := m.c.store
		return m.c.task("resetting "+name, func() (string, error) {
			return "reset " + name + ": it is as new", st.Reset(name, force)
		})
	})
}

// cycleTheme moves to the next theme and remembers it in config.toml.
func (m *Model) cycleTheme() tea.Cmd {
	m.theme = (m.theme + 1) % len(m.themes)
	t := m.themes[m.theme]
	m.c.restyle(t, m.c.styles.Dark)
	m.applyStyles()
	m.say(status{text: "theme " + t.Name})
	if m.opts.ConfigDir == "" {
		return nil
	}
	m.cfg.Theme = t.Name
	path, cfg := filepath.Join(m.opts.ConfigDir, "config.toml"), m.cfg
	m.status.text += " (saved in " + path + ")"
	return func() tea.Msg {
		// Read again first: keys written by hand since start stay.
		cur, err := LoadConfig(path)
		if err == nil {
			cur.Theme = cfg.Theme
			cfg = cur
		}
		return configSavedMsg{err: SaveConfig(path, cfg)}
	}
}
