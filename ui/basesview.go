package ui

import (
	"fmt"
	"os"
	"strings"

	"charm.land/bubbles/v2/key"
	"charm.land/bubbles/v2/textinput"
	tea "charm.land/bubbletea/v2"

	"github.com/incarnate-dev/incarnate/internal/progress"
	"github.com/incarnate-dev/incarnate/layers"

	"github.com/incarnate-dev/incarnate/internal/termtext"
)

// basesView is b: the bases, with import and remove.
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
	return &basesView{c: c, keys: newListKeys("", "remove", "import")}
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

// importDialog asks for a base name and a source path, then imports
// with a progress bar in the status line.
type importDialog struct {
	c     *common
	name  textinput.Model
	path  textinput.Model
	focus int
	taken func(string) bool
	keys  dialogKeys
	err   string
}

func newImportDialog(c *common, taken func(string) bool) *importDialog {
	d := &importDialog{c: c, name: newInput(c, "base name"), path: newInput(c, "/path/to/rootfs, a .tar(.gz|.zst|.xz) or an OCI image"), taken: taken, keys: newDialogKeys()}
	d.path.Blur()
	d.validate()
	return d
}

func (d *importDialog) validate() {
	d.err = validateName("base", d.name.Value(), d.taken)
	if d.err != "" {
		return
	}
	src := d.source()
	if src == "" {
		d.err = "type the path to import from"
	} else if _, err := os.Stat(src); err != nil {
		d.err = "nothing to import at " + src
	}
}

// source is the path typed, with a leading ~ for the user's home as a
// shell would read it.
func (d *importDialog) source() string {
	src := strings.TrimSpace(d.path.Value())
	if src == "~" || strings.HasPrefix(src, "~/") {
		if home, err := os.UserHomeDir(); err == nil {
			src = home + src[1:]
		}
	}
	return src
}

func (d *importDialog) update(msg tea.Msg) (bool, tea.Cmd) {
	keys := ""
	if k, ok := msg.(tea.KeyPressMsg); ok {
		keys = k.String()
	} // else a paste, into the field
	switch keys {
	case "esc", "ctrl+c":
		return true, nil
	case "tab", "shift+tab", "up", "down":
		d.focus = 1 - d.focus
		if d.focus == 0 {
			d.name.Focus()
			d.path.Blur()
		} else {
			d.path.Focus()
			d.name.Blur()
		}
		return false, nil
	case "enter":
		if d.err != "" {
			return false, nil
		}
		return true, d.start()
	}
	var cmd tea.Cmd
	if d.focus == 0 {
		d.name, cmd = d.name.Update(msg)
	} else {
		d.path, cmd = d.path.Update(msg)
	}
	d.validate()
	return false, cmd
}

func (d *importDialog) start() tea.Cmd {
	name, src, st := d.name.Value(), d.source(), d.c.store
	prog := newProgressLine()
	return d.c.taskWithProgress("importing "+name, prog, func() (string, error) {
		var notes []string
		b, err := st.Layers.Import(name, src, layers.ImportOptions{Progress: prog, Warn: func(s string) { notes = append(notes, s) }})
		if err != nil {
			return "", err
		}
		msg := fmt.Sprintf("imported base %s from %s", b.Name, b.Source)
		if len(notes) > 0 {
			msg += " (" + strings.Join(notes, "; ") + ")"
		}
		return msg, nil
	})
}

func (d *importDialog) view(w int) string {
	st := d.c.styles
	label := func(f int, s string) string { return fieldLabel(st, d.focus == f, s) }
	body := []string{label(0, "Name"), "  " + inputView(d.name), label(1, "From"), "  " + inputView(d.path)}
	if d.err != "" {
		body = append(body, "  "+st.Dialog.Error.Render("✗ "+d.err))
	}
	return box(d.c, w, "Import a base", body, d.ShortHelp())
}

func (d *importDialog) ShortHelp() []key.Binding {
	submit := d.keys.Submit
	submit.SetHelp("enter", "import")
	submit.SetEnabled(d.err == "")
	return []key.Binding{d.keys.Next, submit, d.keys.Cancel}
}

func (d *importDialog) FullHelp() [][]key.Binding { return [][]key.Binding{d.ShortHelp()} }
