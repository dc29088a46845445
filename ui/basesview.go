package ui

import (
	"fmt"
	"strings"

	"charm.land/bubbles/v2/key"
	tea "charm.land/bubbletea/v2"

	"github.com/incarnate-dev/incarnate/internal/progress"
	"github.com/incarnate-dev/incarnate/layers"

	"github.com/incarnate-dev/incarnate/internal/termtext"
)

// basesView is b: the bases, with import, pull and remove.
type basesView struct {
	c      *common
	bases  []*layers.Base
	users  map[string][]string
	err    error
	scroll scroller
	keys   *listKeys
	w, h   int
}

func newBasesView(c *common) *basesView {
	keys := newListKeys("", "remove", "import")
	keys.Pull.SetEnabled(true)
	return &basesView{c: c, keys: keys}
}

func (v *basesView) setSize(w, h int) {
	v.w, v.h = w, h
	v.scroll.setHeight(h - 2)
}

func (v *basesView) setBases(bs []*layers.Base, users map[string][]string, err error) {
	v.bases, v.users, v.err = bs, users, err
	v.scroll.setN(len(bs))
}

func (v *basesView) mv() movement {
	k := v.keys
	return movement{k.Up, k.Down, k.PageUp, k.PageDown, k.Home, k.End}
}

func (v *basesView) update(msg tea.KeyPressMsg, m *Model) (back bool, cmd tea.Cmd) {
	if key.Matches(msg, v.keys.Quit) {
		return false, requestQuit
	}
	if v.scroll.handle(msg, v.mv()) {
		return false, nil
	}
	switch {
	case key.Matches(msg, v.keys.Back):
		return true, nil
	case key.Matches(msg, v.keys.Import):
		m.dialog = newImportDialog(v.c, m.baseTaken)
	case key.Matches(msg, v.keys.Pull):
		m.dialog = newPullDialog(v.c, m.baseTaken)
	case key.Matches(msg, v.keys.Remove) && len(v.bases) > 0:
		b := v.bases[v.scroll.cursor]
		if b.Builtin() {
			m.say(status{text: "host is this machine's own / and cannot be removed", err: true})
			return false, nil
		}
		if on := v.users[b.Name]; len(on) > 0 {
			m.say(status{text: fmt.Sprintf("base %s is in use by %s; discard them first", b.Name, strings.Join(on, ", ")), err: true})
			return false, nil
		}
		size, _ := b.Size()
		name, st := b.Name, v.c.store
		m.dialog = newConfirm(v.c, "Remove base "+name,
			fmt.Sprintf("Remove base %s? The layers no other base uses are deleted (%s on disk).", name, progress.HumanSize(size)),
			func() tea.Cmd {
				return v.c.task("removing base "+name, func() (string, error) {
					freed, err := st.RemoveBase(name)
					return fmt.Sprintf("removed base %s, %s freed", name, progress.HumanSize(freed)), err
				})
			})
	}
	return false, nil
}

func (v *basesView) View() string {
	st := v.c.styles
	if v.err != nil {
		return st.Status.Error.Render("bases: " + termtext.Visible(v.err.Error()))
	}
	if v.bases == nil {
		return st.Muted.Render("reading bases…")
	}
	const layersW, sizeW, usedW, createdW = 6, 8, 8, 10
	nameW := max(8, min(24, v.w/5))
	srcW := max(6, v.w-nameW-layersW-sizeW-usedW-createdW-6)
	line := func(mark, name, lay, size, used, created, src string) string {
		return mark + fit(name, nameW) + " " + fitRight(lay, layersW) + " " + fitRight(size, sizeW) + " " +
			fitRight(used, usedW) + " " + fitRight(created, createdW) + " " + fit(src, srcW)
	}
	var b strings.Builder
	b.WriteString(st.Muted.Render(fmt.Sprintf("%s; a session stands on one base, which it never changes.", plural(len(v.bases), "base", "bases"))) + "\n")
	b.WriteString(st.List.Header.Render(line(" ", "NAME", "LAYERS", "SIZE", "SESSIONS", "CREATED", "SOURCE")))
	now := v.c.now()
	from, to := v.scroll.window()
	for i := from; i < to; i++ {
		bs := v.bases[i]
		size := "-"
		if n, ok := bs.Size(); ok && !bs.Builtin() {
			size = progress.HumanSize(n)
		}
		created := ago(now, bs.Created)
		if bs.Builtin() {
			created = "built in"
		}
		mark := " "
		if i == v.scroll.cursor {
			mark = "›"
		}
		l := line(mark, bs.Name, fmt.Sprint(len(bs.LayerIDs())), size, fmt.Sprint(len(v.users[bs.Name])), created, termtext.Visible(bs.Source))
		if i == v.scroll.cursor {
			l = st.List.Selected.Render(l)
		} else {
			l = st.List.Row.Render(l)
		}
		b.WriteString("\n" + l)
	}
	return b.String()
}
