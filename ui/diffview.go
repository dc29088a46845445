package ui

import (
	"fmt"
	"path/filepath"
	"strings"

	"charm.land/bubbles/v2/key"
	tea "charm.land/bubbletea/v2"

	"github.com/incarnate-dev/incarnate/session"

	"github.com/incarnate-dev/incarnate/internal/termtext"
)

// diffView is D: every path a session changed, coloured by kind, and on
// enter the start of the chosen file as the session has it.
type diffView struct {
	c       *common
	name    string
	changes []session.Change
	err     error
	loaded  bool
	scroll  scroller
	keys    *listKeys
	w, h    int
	// The preview of a file, when one is open.
	preview *previewMsg
	want    string // the path whose preview is being read
	pscroll int
	// marked are the paths space chose for a; plan is what applying
	// each would do (a conflict, say), when the session can be applied.
	marked map[string]bool
	plan   map[string]session.Step
	// filter keeps the paths that contain it; typing is true while it is
	// being typed (after /). shown are the changes it keeps.
	filter string
	typing bool
	shown  []session.Change
}

func newDiffView(c *common, name string) *diffView {
	d := &diffView{c: c, name: name, keys: newListKeys("show file", "", ""), marked: map[string]bool{}}
	return d
}

// setPlan takes what applying would do; a session that cannot be
// applied (an imported base) gets no marks and no a.
func (d *diffView) setPlan(p planMsg) {
	if p.name != d.name {
		return
	}
	d.plan = map[string]session.Step{}
	for _, st := range p.steps {
		d.plan[st.Path] = st
	}
	ok := p.err == nil
	d.keys.Mark.SetEnabled(ok)
	d.keys.Apply.SetEnabled(ok)
}

func (d *diffView) setSize(w, h int) {
	d.w, d.h = w, h
	d.scroll.setHeight(h - 2)
}

func (d *diffView) setChanges(ch []session.Change, err error) {
	d.changes, d.err, d.loaded = ch, err, true
	d.refilter()
}

// refilter recomputes what the filter keeps.
func (d *diffView) refilter() {
	d.shown = d.shown[:0]
	for _, ch := range d.changes {
		if d.filter == "" || strings.Contains(ch.Path, d.filter) {
			d.shown = append(d.shown, ch)
		}
	}
	d.scroll.setN(len(d.shown))
}

func (d *diffView) setPreview(p previewMsg) {
	if p.path == d.want {
		d.preview = &p
	}
}

func (d *diffView) mv() movement {
	k := d.keys
	return movement{k.Up, k.Down, k.PageUp, k.PageDown, k.Home, k.End}
}

// paste adds pasted text to the filter being typed.
func (d *diffView) paste(text string) {
	if d.typing {
		d.filter += text
		d.refilter()
	}
}

// update handles a key; back returns to the list.
func (d *diffView) update(msg tea.KeyPressMsg) (back bool, cmd tea.Cmd) {
	if key.Matches(msg, d.keys.Quit) {
		return false, requestQuit
	}
	if d.want != "" {
		switch {
		case key.Matches(msg, d.keys.Back), key.Matches(msg, d.keys.Enter):
			d.want, d.preview, d.pscroll = "", nil, 0
		case key.Matches(msg, d.keys.Down):
			d.pscroll++
		case key.Matches(msg, d.keys.Up):
			d.pscroll = max(0, d.pscroll-1)
		case key.Matches(msg, d.keys.PageDown):
			d.pscroll += d.h - 3
		case key.Matches(msg, d.keys.PageUp):
			d.pscroll = max(0, d.pscroll-(d.h-3))
		}
		return false, nil
	}
	if d.typing {
		switch msg.Code {
		case tea.KeyEnter:
			d.typing = false
		case tea.KeyEscape:
			d.typing, d.filter = false, ""
		case tea.KeyBackspace:
			if r := []rune(d.filter); len(r) > 0 {
				d.filter = string(r[:len(r)-1])
			}
		default:
			d.filter += msg.Text // a space's is " "; a special key's, none
		}
		d.refilter()
		return false, nil
	}
	if msg.String() == "/" {
		d.typing = true
		return false, nil
	}
	if key.Matches(msg, d.keys.Back) && d.filter != "" {
		d.filter = ""
		d.refilter()
		return false, nil
	}
	if d.scroll.handle(msg, d.mv()) {
		return false, nil
	}
	switch {
	case key.Matches(msg, d.keys.Back):
		return true, nil
	case key.Matches(msg, d.keys.Enter) && len(d.shown) > 0:
		ch := d.shown[d.scroll.cursor]
		d.want = ch.Path
		if ch.Kind == session.Modified {
			return false, patchCmd(d.c.store, d.name, ch)
		}
		return false, previewCmd(filepath.Join(d.c.store.Dir(d.name), "upper"), ch)
	case key.Matches(msg, d.keys.Mark) && len(d.shown) > 0:
		p := d.shown[d.scroll.cursor].Path
		d.marked[p] = !d.marked[p]
		if !d.marked[p] {
			delete(d.marked, p)
		}
		d.scroll.moveTo(d.scroll.cursor + 1)
	case key.Matches(msg, d.keys.Apply) && len(d.changes) > 0:
		var paths []string
		for _, ch := range d.changes {
			if d.marked[ch.Path] {
				paths = append(paths, ch.Path)
			}
		}
		if len(paths) == 0 && d.filter != "" {
			for _, ch := range d.shown { // nothing marked: what the filter shows
				paths = append(paths, ch.Path)
			}
		}
		name := d.name
		return false, func() tea.Msg { return applyAskMsg{name: name, paths: paths} }
	}
	return false, nil
}

// applySummary says what applying paths (all when none) would change,
// by kind, and how many are left alone.
func (d *diffView) applySummary(paths []string) string {
	counts := map[session.Kind]int{}
	n, left := 0, 0
	for _, ch := range d.changes {
		if len(paths) > 0 && !chosen(ch.Path, paths) {
			continue
		}
		if st, ok := d.plan[ch.Path]; ok && (st.Conflict != "" || st.Denied != "") {
			left++
			continue
		}
		counts[ch.Kind]++
		n++
	}
	s := plural(n, "path", "paths")
	var parts []string
	for _, k := range []session.Kind{session.Added, session.Modified, session.Deleted, session.Replaced} {
		if counts[k] > 0 {
			parts = append(parts, fmt.Sprintf("%d %s", counts[k], k))
		}
	}
	if len(parts) > 0 {
		s += " (" + strings.Join(parts, ", ") + ")"
	}
	if left > 0 {
		s += fmt.Sprintf("; %s left alone (conflicts, or not yours to write)", plural(left, "path", "paths"))
	}
	return s
}

// chosen reports whether p is one of paths or below one.
func chosen(p string, paths []string) bool {
	for _, q := range paths {
		if p == q || strings.HasPrefix(p, strings.TrimSuffix(q, "/")+"/") {
			return true
		}
	}
	return false
}

func (d *diffView) View() string {
	st := d.c.styles
	if d.want != "" {
		return d.previewView()
	}
	var b strings.Builder
	switch {
	case !d.loaded:
		b.WriteString(st.Muted.Render("reading what " + d.name + " changed…"))
		return b.String()
	case d.err != nil:
		b.WriteString(st.Status.Error.Render("diff of " + d.name + ": " + termtext.Visible(d.err.Error())))
		return b.String()
	}
	counts := map[session.Kind]int{}
	for _, ch := range d.changes {
		counts[ch.Kind]++
	}
	summary := fmt.Sprintf("%s changed in %s:", plural(len(d.changes), "path", "paths"), d.name)
	for _, k := range []session.Kind{session.Added, session.Modified, session.Deleted, session.Replaced} {
		if counts[k] > 0 {
			summary += " " + kindStyle(st, k).Render(fmt.Sprintf("%d %s", counts[k], k))
		}
	}
	if d.typing || d.filter != "" {
		summary += st.Muted.Render(fmt.Sprintf("  filter %q (%d shown; / changes it, esc clears it)", d.filter, len(d.shown)))
	}
	b.WriteString(summary + "\n")
	if len(d.changes) == 0 {
		b.WriteString(st.Muted.Render("\nNothing: the session is exactly its base."))
		return b.String()
	}
	b.WriteString(st.List.Header.Render(fit("  PATH", d.w)))
	from, to := d.scroll.window()
	for i := from; i < to; i++ {
		ch := d.shown[i]
		mark := " "
		if i == d.scroll.cursor {
			mark = "›"
		}
		if d.marked[ch.Path] {
			mark += "*"
		} else {
			mark += " "
		}
		text := mark + ch.Kind.Letter() + " " + termtext.Visible(ch.Path)
		why := ""
		if s, ok := d.plan[ch.Path]; ok && (s.Conflict != "" || s.Denied != "") {
			why = "  ! " + s.Conflict + s.Denied
		}
		line := fit(text+why, d.w)
		switch {
		case i == d.scroll.cursor:
			line = st.List.Selected.Render(line)
		case why != "":
			line = kindStyle(st, ch.Kind).Render(text) + st.Status.Error.Render(fit(why, max(0, d.w-len([]rune(text)))))
		default:
			line = kindStyle(st, ch.Kind).Render(line)
		}
		b.WriteString("\n" + line)
	}
	return b.String()
}

func (d *diffView) previewView() string {
	st := d.c.styles
	head := st.Detail.Name.Render(termtext.Visible(d.want)) + st.Muted.Render("  (as "+d.name+" has it; esc goes back)")
	switch {
	case d.preview == nil:
		return head + "\n" + st.Muted.Render("reading…")
	case d.preview.err != nil:
		return head + "\n" + st.Status.Error.Render(termtext.Visible(d.preview.err.Error()))
	}
	lines := strings.Split(strings.TrimRight(termtext.VisibleText(strings.ReplaceAll(d.preview.text, "\t", "    ")), "\n"), "\n")
	d.pscroll = min(d.pscroll, max(0, len(lines)-1))
	lines = lines[d.pscroll:]
	if len(lines) > d.h-1 {
		lines = lines[:d.h-1]
	}
	for i, l := range lines {
		style := st.Text
		if d.preview.patch {
			switch {
			case strings.HasPrefix(l, "+"):
				style = st.Kind.Added
			case strings.HasPrefix(l, "-"):
				style = st.Kind.Deleted
			case strings.HasPrefix(l, "@@"):
				style = st.Muted
			}
		}
		lines[i] = style.Render(fit(l, d.w))
	}
	return head + "\n" + strings.Join(lines, "\n")
}
