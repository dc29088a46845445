package ui

import (
	"fmt"
	"strings"

	"charm.land/bubbles/v2/key"
	tea "charm.land/bubbletea/v2"
	"charm.land/lipgloss/v2"
	"github.com/charmbracelet/colorprofile"
	"github.com/charmbracelet/x/ansi"

	"github.com/incarnate-dev/incarnate/internal/termtext"
)

// View draws the screen, on the alternate screen. It only reads the
// model: everything it shows was computed by a command before.
func (m *Model) View() tea.View {
	v := tea.NewView(m.screen())
	v.AltScreen = true
	return v
}

// screen is what View draws. Without colours it is plain text, as Lip
// Gloss v1 drew it (termenv wrote no attribute for its ASCII profile):
// the marks (›, ▸, A M D R) say what the colours would.
func (m *Model) screen() string {
	s := m.styledScreen()
	if m.c.profile < colorprofile.ANSI {
		return ansi.Strip(s)
	}
	return s
}

func (m *Model) styledScreen() string {
	if m.width == 0 || m.height == 0 {
		return ""
	}
	var body string
	status := m.statusView()
	bodyH := m.height - 2 - strings.Count(status, "\n") - 1
	switch {
	case m.mode == modeHelp:
		body = m.helpView()
	case m.mode == modeLog:
		body = m.logView(bodyH)
	case m.mode == modeDiff:
		body = m.diff.View()
	case m.mode == modeBases:
		body = m.bases.View()
	default:
		body = m.listView()
	}
	if m.dialog != nil {
		body = lipgloss.Place(m.width, bodyH, lipgloss.Center, lipgloss.Center, m.dialog.view(m.width),
			lipgloss.WithWhitespaceChars(" "))
	}
	parts := []string{m.titleView(), pad(body, m.width, bodyH), status, m.footerView()}
	return strings.Join(parts, "\n")
}

// pad makes s exactly h lines of at most w cells.
func pad(s string, w, h int) string {
	lines := strings.Split(s, "\n")
	if len(lines) > h {
		lines = lines[:h]
	}
	for i, l := range lines {
		if ansi.StringWidth(l) > w {
			lines[i] = ansi.Truncate(l, w, "")
		}
	}
	for len(lines) < h {
		lines = append(lines, "")
	}
	return strings.Join(lines, "\n")
}

func (m *Model) titleView() string {
	st := m.c.styles
	title := st.Title.Render("incarnate")
	var info string
	switch m.mode {
	case modeDiff:
		info = "diff of " + m.diff.name
	case modeBases:
		info = "bases"
	case modeHelp:
		info = "keys"
	default:
		n := len(m.list.rows)
		info = plural(n, "session", "sessions")
		if m.list.filter != "" {
			info = fmt.Sprintf("%d of %d sessions match %q", len(m.list.shown), n, m.list.filter)
		}
		info += " · sort: " + m.list.sort.String()
	}
	right := st.Muted.Render("theme " + m.themes[m.theme].Name + " ")
	left := title + st.TitleInfo.Render(info)
	gap := m.width - ansi.StringWidth(left) - ansi.StringWidth(right)
	if gap < 1 {
		return ansi.Truncate(left, m.width, "…")
	}
	return left + strings.Repeat(" ", gap) + right
}

func (m *Model) listView() string {
	st := m.c.styles
	list := m.list.View(m.width)
	dh := m.detailHeight()
	if dh == 0 || m.list.selected() == nil {
		return list
	}
	listH := m.height - chromeLines - dh
	rule := st.Detail.Rule.Render(strings.Repeat("─", m.width))
	return pad(list, m.width, listH) + "\n" + rule + "\n" + m.detail.View(m.list.selected(), m.width, dh)
}

func (m *Model) helpView() string {
	st := m.c.styles
	h := m.help
	h.ShowAll = true
	intro := st.Muted.Render("Every key of the session list (those of a session act on the selected one). esc or any key goes back.")
	more := st.Muted.Render("In dialogs: tab moves between fields, enter confirms, esc cancels. " +
		"Destructive keys (d, r) ask first.\nIn the diff view, enter shows a file (a modified one as its diff against the base), space marks, " +
		"a applies the marked (else the filtered, else all) to the host after asking, and / filters; in the bases view, i imports, p pulls from a registry and d removes.")
	wrap := lipgloss.NewStyle().Width(m.width)
	// All of them, those that do nothing yet (no session) too: help
	// that hides most keys until there is a session explains nothing.
	groups := m.keys.FullHelp()
	for _, g := range groups {
		for i := range g {
			g[i].SetEnabled(true)
		}
	}
	return "\n" + wrap.Render(intro) + "\n\n" + h.FullHelpView(groups) + "\n\n" + wrap.Render(more)
}

// logView is the recent messages, newest last, each wrapped to the
// screen's width: what the status line had no room for is read here.
func (m *Model) logView(h int) string {
	st := m.c.styles
	lines := []string{"", st.Muted.Render("Recent messages, newest last. esc or any key goes back."), ""}
	if len(m.log) == 0 {
		lines = append(lines, st.Muted.Render("Nothing has been said yet."))
	}
	wrap := lipgloss.NewStyle().Width(max(m.width-9, 10))
	var body []string
	for _, e := range m.log {
		style := st.Status.Normal
		switch {
		case e.err:
			style = st.Status.Error
		case e.ok:
			style = st.Status.Success
		}
		text := wrap.Render(style.Render(termtext.Visible(e.text)))
		stamp := st.Muted.Render(e.at.Format("15:04:05")) + " "
		body = append(body, lipgloss.JoinHorizontal(lipgloss.Top, stamp, text))
	}
	all := strings.Split(strings.Join(body, "\n"), "\n")
	if room := h - len(lines); room > 0 && len(all) > room {
		all = all[len(all)-room:] // the newest fit
	}
	return strings.Join(append(lines, all...), "\n")
}

func (m *Model) statusView() string {
	st := m.c.styles
	if m.filtering {
		return inputView(m.filter)
	}
	if len(m.taskList) > 0 {
		t := m.tasks[m.taskList[len(m.taskList)-1]]
		line := m.spinner.View() + " " + st.Status.Normal.Render(termtext.Visible(t.what)+"…")
		if t.prog != nil {
			text, pct := t.prog.get()
			if pct >= 0 {
				line += " " + m.bar.ViewAs(pct)
			}
			if text != "" {
				line += " " + st.Muted.Render(termtext.Visible(text))
			}
		}
		if n := len(m.taskList); n > 1 {
			line += st.Muted.Render(fmt.Sprintf(" (+%d more)", n-1))
		}
		return ansi.Truncate(line, m.width, "…")
	}
	text := termtext.Visible(m.status.text)
	if text == "" && m.list.filter != "" {
		text = fmt.Sprintf("filter %q — / changes it, esc clears it", m.list.filter)
	}
	style := st.Status.Normal
	switch {
	case m.status.err:
		style = st.Status.Error
		text = "✗ " + text
	case m.status.ok:
		style = st.Status.Success
	}
	return style.Render(wrapStatus(text, m.width, m.height))
}

// wrapStatus wraps a status message to the screen's width, so an error
// is read to its end (its fix comes last), on up to a third of the
// screen; only beyond that is it cut.
func wrapStatus(text string, width, height int) string {
	if ansi.StringWidth(text) <= width || width < 10 {
		return ansi.Truncate(text, width, "…")
	}
	lines := strings.Split(ansi.Wordwrap(text, width, " "), "\n")
	maxLines := max(1, height/3)
	if len(lines) > maxLines {
		lines = lines[:maxLines]
		lines[maxLines-1] = ansi.Truncate(lines[maxLines-1]+" …", width, "…")
	}
	for i, l := range lines {
		lines[i] = ansi.Truncate(l, width, "…") // a word longer than the line
	}
	return strings.Join(lines, "\n")
}

func (m *Model) footerView() string {
	var keys interface {
		ShortHelp() []key.Binding
	}
	switch {
	case m.dialog != nil:
		return ""
	case m.filtering:
		return m.help.ShortHelpView(filterHelp)
	case m.mode == modeDiff:
		keys = m.diff.keys
	case m.mode == modeBases:
		keys = m.bases.keys
	case m.mode == modeHelp:
		return ""
	default:
		keys = m.keys
	}
	return m.help.ShortHelpView(keys.ShortHelp())
}
