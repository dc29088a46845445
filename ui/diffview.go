package ui

import (
	"fmt"
	"path/filepath"
	"strings"

	"github.com/charmbracelet/bubbles/key"
	tea "github.com/charmbracelet/bubbletea"

	"app/incarnate/session"

	"app/incarnate/internal/termtext"
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
}

func newDiffView(c *common, name string) *diffView {
	return &diffView{c: c, name: name, keys: newListKeys("show file", "", "")}
}

func (d *diffView) setSize(w, h int) {
	d.w, d.h = w, h
	d.scroll.setHeight(h - 2)
}

func (d *diffView) setChanges(ch []session.Change, err error) {
	d.changes, d.err, d.loaded = ch, err, true
	d.scroll.setN(len(ch))
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

// update handles a key; back returns to the list.
func (d *diffView) update(msg tea.KeyMsg) (back bool, cmd tea.Cmd) {
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
	if d.scroll.handle(msg, d.mv()) {
		return false, nil
	}
	switch {
	case key.Matches(msg, d.keys.Back):
		return true, nil
	case key.Matches(msg, d.keys.Enter) && len(d.changes) > 0:
		ch := d.changes[d.scroll.cursor]
		d.want = ch.Path
		return false, previewCmd(filepath.Join(d.c.store.Dir(d.name), "upper"), ch)
	}
	return false, nil
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
	b.WriteString(summary + "\n")
	if len(d.changes) == 0 {
		b.WriteString(st.Muted.Render("\nNothing: the session is exactly its base."))
		return b.String()
	}
	b.WriteString(st.List.Header.Render(fit("  PATH", d.w)))
	from, to := d.scroll.window()
	for i := from; i < to; i++ {
		ch := d.changes[i]
		mark := " "
		if i == d.scroll.cursor {
			mark = "›"
		}
		line := fit(mark+ch.Kind.Letter()+" "+termtext.Visible(ch.Path), d.w)
		if i == d.scroll.cursor {
			line = st.List.Selected.Render(line)
		} else {
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
		lines[i] = st.Text.Render(fit(l, d.w))
	}
	return head + "\n" + strings.Join(lines, "\n")
}
