package ui

import (
	"strings"
	"unicode/utf8"

	"charm.land/bubbles/v2/key"
	"charm.land/bubbles/v2/textinput"
	tea "charm.land/bubbletea/v2"
	"charm.land/lipgloss/v2"

	"github.com/incarnate-dev/incarnate/layers"
	"github.com/incarnate-dev/incarnate/themes"
)

// dialog is a box over the list that takes the keys until it closes.
type dialog interface {
	// update handles a key, or a paste (tea.PasteMsg) into the field
	// with the focus; done closes the dialog, cmd runs either way.
	update(msg tea.Msg) (done bool, cmd tea.Cmd)
	view(w int) string
	ShortHelp() []key.Binding
	FullHelp() [][]key.Binding
}

// dialogKeys are what every dialog answers to.
type dialogKeys struct {
	Yes, No, Submit, Cancel, Next, Prev, Left, Right, Toggle key.Binding
}

func newDialogKeys() dialogKeys {
	return dialogKeys{
		Yes:    key.NewBinding(key.WithKeys("y", "Y"), key.WithHelp("y", "yes")),
		No:     key.NewBinding(key.WithKeys("n", "N", "esc", "q"), key.WithHelp("n/esc", "no")),
		Submit: key.NewBinding(key.WithKeys("enter"), key.WithHelp("enter", "ok")),
		Cancel: key.NewBinding(key.WithKeys("esc", "ctrl+c"), key.WithHelp("esc", "cancel")),
		Next:   key.NewBinding(key.WithKeys("tab", "down"), key.WithHelp("tab", "next field")),
		Prev:   key.NewBinding(key.WithKeys("shift+tab", "up"), key.WithHelp("shift+tab", "previous")),
		Left:   key.NewBinding(key.WithKeys("left", "h"), key.WithHelp("←/→", "choose")),
		Right:  key.NewBinding(key.WithKeys("right", "l"), key.WithHelp("→", "next")),
		Toggle: key.NewBinding(key.WithKeys("space", "x"), key.WithHelp("space", "toggle")),
	}
}

// box draws a dialog: title, body, and its keys, w cells wide at most.
func box(c *common, w int, title string, body []string, keys []key.Binding) string {
	st := c.styles
	inner := min(w-4, 70)
	parts := []string{st.Dialog.Title.Render(title), ""}
	for _, l := range body {
		// Leading spaces indent the wrapped lines too.
		n := len(l) - len(strings.TrimLeft(l, " "))
		parts = append(parts, lipgloss.NewStyle().PaddingLeft(n).Width(inner).Render(l[n:]))
	}
	var hs []string
	for _, k := range keys {
		if k.Enabled() {
			hs = append(hs, st.Help.Key.Render(k.Help().Key)+" "+st.Help.Desc.Render(k.Help().Desc))
		}
	}
	parts = append(parts, "", lipgloss.NewStyle().Width(inner).Render(strings.Join(hs, st.Help.Sep.Render(" · "))))
	// Lip Gloss v2 counts the border in the width: inner, the padding
	// (1 a side) and the border (1 a side).
	return st.Dialog.Box.Width(inner + 4).Render(strings.Join(parts, "\n"))
}

func newInput(c *common, placeholder string) textinput.Model {
	ti := textinput.New()
	ti.Prompt = "› "
	ti.Placeholder = placeholder
	ti.CharLimit = 4096
	ti.SetStyles(inputStyles(c.styles))
	ti.Focus()
	return ti
}

// inputView draws ti. Bubbles v2 sizes a placeholder by the field's
// width, and with none (ours: the dialog wraps) cuts it to its first
// letter; a copy just wide enough draws it whole, as v1 did.
func inputView(ti textinput.Model) string {
	if ti.Value() == "" {
		ti.SetWidth(utf8.RuneCountInString(ti.Placeholder) - 1)
	}
	return ti.View()
}

// inputStyles are a text field's styles in the theme's colours, the same
// with the focus or without (Bubbles v2 greys a field without it), and a
// steady cursor in the text's own colour: a blinking one would repaint
// twice a second for nothing, and make the screen differ from one moment
// to the next.
func inputStyles(st *themes.Styles) textinput.Styles {
	state := textinput.StyleState{Text: st.Text, Placeholder: st.Muted, Suggestion: st.Muted, Prompt: st.Accent}
	return textinput.Styles{Focused: state, Blurred: state,
		Cursor: textinput.CursorStyle{Color: lipgloss.NoColor{}, Shape: tea.CursorBlock}}
}

// confirmDialog asks before something that cannot be undone.
type confirmDialog struct {
	c           *common
	title, body string
	onYes       func() tea.Cmd
	keys        dialogKeys
}

func newConfirm(c *common, title, body string, onYes func() tea.Cmd) *confirmDialog {
	return &confirmDialog{c: c, title: title, body: body, onYes: onYes, keys: newDialogKeys()}
}

func (d *confirmDialog) update(msg tea.Msg) (bool, tea.Cmd) {
	k, ok := msg.(tea.KeyPressMsg)
	switch {
	case !ok: // a paste answers nothing
	case key.Matches(k, d.keys.Yes):
		return true, d.onYes()
	case key.Matches(k, d.keys.No), key.Matches(k, d.keys.Cancel):
		return true, nil
	}
	return false, nil
}

func (d *confirmDialog) view(w int) string {
	return box(d.c, w, d.title, []string{d.c.styles.Dialog.Warning.Render(d.body)}, d.ShortHelp())
}

func (d *confirmDialog) ShortHelp() []key.Binding  { return []key.Binding{d.keys.Yes, d.keys.No} }
func (d *confirmDialog) FullHelp() [][]key.Binding { return [][]key.Binding{d.ShortHelp()} }

// promptDialog asks for one name (rename, clone, commit), checking it as
// it is typed.
type promptDialog struct {
	c      *common
	title  string
	kind   string // "session" or "base": what the name is for
	input  textinput.Model
	taken  func(name string) bool
	submit func(name string) tea.Cmd
	keys   dialogKeys
	err    string
	first  string // the name offered to start with
}

func newPrompt(c *common, title, kind, value string, taken func(string) bool, submit func(string) tea.Cmd) *promptDialog {
	d := &promptDialog{c: c, title: title, kind: kind, input: newInput(c, kind+" name"), taken: taken, submit: submit, keys: newDialogKeys(), first: value}
	d.input.SetValue(value)
	d.input.CursorEnd()
	d.validate()
	return d
}

func (d *promptDialog) validate() {
	d.err = validateName(d.kind, d.input.Value(), d.taken)
	if d.err != "" && d.input.Value() == d.first && d.taken != nil && d.taken(d.first) {
		d.err = "type a new name" // the name offered is the one to change (a rename)
	}
}

// validateName says what is wrong with a name, "" if nothing.
func validateName(kind, name string, taken func(string) bool) string {
	if name == "" {
		return "type a name"
	}
	if err := layers.ValidateName(kind, name); err != nil {
		return err.Error()
	}
	if taken != nil && taken(name) {
		return "a " + kind + " called " + name + " exists already"
	}
	return ""
}

func (d *promptDialog) update(msg tea.Msg) (bool, tea.Cmd) {
	k, isKey := msg.(tea.KeyPressMsg)
	switch {
	case !isKey: // a paste, into the field
	case key.Matches(k, d.keys.Cancel):
		return true, nil
	case key.Matches(k, d.keys.Submit):
		if d.err != "" {
			return false, nil
		}
		return true, d.submit(d.input.Value())
	}
	var cmd tea.Cmd
	d.input, cmd = d.input.Update(msg)
	d.validate()
	return false, cmd
}

func (d *promptDialog) view(w int) string {
	st := d.c.styles
	body := []string{inputView(d.input)}
	if d.err != "" {
		body = append(body, st.Dialog.Error.Render("✗ "+d.err))
	} else {
		body = append(body, st.Status.Success.Render("✓ "+d.input.Value()))
	}
	return box(d.c, w, d.title, body, d.ShortHelp())
}

func (d *promptDialog) ShortHelp() []key.Binding {
	submit := d.keys.Submit
	submit.SetEnabled(d.err == "")
	return []key.Binding{submit, d.keys.Cancel}
}
func (d *promptDialog) FullHelp() [][]key.Binding { return [][]key.Binding{d.ShortHelp()} }

// fieldLabel is a dialog field's name, marked when it has the focus: an
// arrow as well as a colour, so it shows without colours too.
func fieldLabel(st *themes.Styles, focused bool, s string) string {
	if focused {
		return st.Dialog.Focused.Render("▸ " + s)
	}
	return st.Dialog.Label.Render("  " + s)
}
