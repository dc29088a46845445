package ui

import (
	"errors"
	"fmt"
	"os"
	"strings"

	"charm.land/bubbles/v2/key"
	"charm.land/bubbles/v2/textinput"
	tea "charm.land/bubbletea/v2"

	"github.com/incarnate-dev/incarnate/internal/registry"
	"github.com/incarnate-dev/incarnate/layers"
)

// pairDialog asks for two fields, checked as they are typed, then
// starts slow work (an import, a pull) with a progress bar in the
// status line.
type pairDialog struct {
	c      *common
	fields [2]textinput.Model
	labels [2]string
	title  string
	verb   string // what enter does
	focus  int
	keys   dialogKeys
	err    string
	check  func(a, b string) string // what is wrong, or ""
	run    func(a, b string) tea.Cmd
}

func newPairDialog(c *common, title, verb string, labels, hints [2]string) *pairDialog {
	d := &pairDialog{c: c, title: title, verb: verb, labels: labels, keys: newDialogKeys()}
	d.fields = [2]textinput.Model{newInput(c, hints[0]), newInput(c, hints[1])}
	d.fields[1].Blur()
	return d
}

// newImportDialog asks for a base name and a source path.
func newImportDialog(c *common, taken func(string) bool) *pairDialog {
	d := newPairDialog(c, "Import a base", "import", [2]string{"Name", "From"},
		[2]string{"base name", "/path/to/rootfs, a .tar(.gz|.zst|.xz) or an OCI image"})
	d.check = func(name, src string) string {
		if err := validateName("base", name, taken); err != "" {
			return err
		}
		src = expandHome(src)
		if src == "" {
			return "type the path to import from"
		} else if _, err := os.Stat(src); err != nil {
			return "nothing to import at " + src
		}
		return ""
	}
	d.run = func(name, src string) tea.Cmd { return importCmd(c, name, expandHome(src)) }
	d.validate()
	return d
}

// newPullDialog asks for an image reference and, if not the image's
// own, a base name.
func newPullDialog(c *common, taken func(string) bool) *pairDialog {
	d := newPairDialog(c, "Pull a base from a registry", "pull", [2]string{"Image", "Name"},
		[2]string{"debian:12, ghcr.io/org/image:tag", "base name (default: the image's)"})
	d.check = func(img, name string) string {
		if strings.TrimSpace(img) == "" {
			return "type an image reference"
		}
		ref, err := registry.ParseRef(strings.TrimSpace(img), registry.Options{})
		if err != nil {
			return err.Error()
		}
		if name == "" {
			name = layers.PullName(ref)
		}
		return validateName("base", name, taken)
	}
	d.run = func(img, name string) tea.Cmd { return pullCmd(c, strings.TrimSpace(img), name) }
	d.validate()
	return d
}

func (d *pairDialog) validate() { d.err = d.check(d.fields[0].Value(), d.fields[1].Value()) }

// expandHome reads a leading ~ of path as the user's home, as a shell
// would.
func expandHome(path string) string {
	src := strings.TrimSpace(path)
	if src == "~" || strings.HasPrefix(src, "~/") {
		if home, err := os.UserHomeDir(); err == nil {
			src = home + src[1:]
		}
	}
	return src
}

func (d *pairDialog) update(msg tea.Msg) (bool, tea.Cmd) {
	keys := ""
	if k, ok := msg.(tea.KeyPressMsg); ok {
		keys = k.String()
	} // else a paste, into the field
	switch keys {
	case "esc", "ctrl+c":
		return true, nil
	case "tab", "shift+tab", "up", "down":
		d.fields[d.focus].Blur()
		d.focus = 1 - d.focus
		d.fields[d.focus].Focus()
		return false, nil
	case "enter":
		if d.err != "" {
			return false, nil
		}
		return true, d.run(d.fields[0].Value(), d.fields[1].Value())
	}
	var cmd tea.Cmd
	d.fields[d.focus], cmd = d.fields[d.focus].Update(msg)
	d.validate()
	return false, cmd
}

// importCmd imports base name from src.
func importCmd(c *common, name, src string) tea.Cmd {
	st := c.store
	prog := newProgressLine()
	return c.taskWithProgress("importing "+name, prog, func() (string, error) {
		var notes []string
		b, err := st.Layers.Import(name, src, layers.ImportOptions{Progress: prog, Warn: func(s string) { notes = append(notes, s) }})
		if err != nil {
			return "", err
		}
		return withNotes(fmt.Sprintf("imported base %s from %s", b.Name, b.Source), notes), nil
	})
}

// pullCmd pulls img as base name ("" for the image's own), a progress
// line for each layer fetched.
func pullCmd(c *common, img, name string) tea.Cmd {
	st := c.store
	ref, err := registry.ParseRef(img, registry.Options{})
	if err != nil {
		return nil // validate refused it already
	}
	if name == "" {
		name = layers.PullName(ref)
	}
	prog := newProgressLine()
	return c.taskWithProgress("pulling "+name, prog, func() (string, error) {
		remote, err := registry.Remote(registry.Options{})
		if err != nil {
			return "", err
		}
		var notes []string
		o := layers.PullOptions{ImportOptions: layers.ImportOptions{Progress: prog, Warn: func(s string) { notes = append(notes, s) }}, Remote: remote}
		b, err := st.Layers.Pull(name, ref, o)
		if err != nil {
			// One status line: the advice after the registry's answer.
			return "", errors.New(strings.ReplaceAll(registry.Explain(err, ref).Error(), "\n", "; "))
		}
		return withNotes(fmt.Sprintf("pulled base %s from %s (%d layers)", b.Name, b.Source, len(b.Layers)), notes), nil
	})
}

func withNotes(msg string, notes []string) string {
	if len(notes) > 0 {
		msg += " (" + strings.Join(notes, "; ") + ")"
	}
	return msg
}

func (d *pairDialog) view(w int) string {
	st := d.c.styles
	var body []string
	for i, f := range d.fields {
		body = append(body, fieldLabel(st, d.focus == i, d.labels[i]), "  "+inputView(f))
	}
	if d.err != "" {
		body = append(body, "  "+st.Dialog.Error.Render("✗ "+d.err))
	}
	return box(d.c, w, d.title, body, d.ShortHelp())
}

func (d *pairDialog) ShortHelp() []key.Binding {
	submit := d.keys.Submit
	submit.SetHelp("enter", d.verb)
	submit.SetEnabled(d.err == "")
	return []key.Binding{d.keys.Next, submit, d.keys.Cancel}
}

func (d *pairDialog) FullHelp() [][]key.Binding { return [][]key.Binding{d.ShortHelp()} }
