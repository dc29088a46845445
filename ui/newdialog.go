package ui

import (
	"fmt"
	"strings"

	"charm.land/bubbles/v2/key"
	"charm.land/bubbles/v2/textinput"
	tea "charm.land/bubbletea/v2"
	"charm.land/lipgloss/v2"

	"github.com/incarnate-dev/incarnate/layers"
	"github.com/incarnate-dev/incarnate/sandbox"
	"github.com/incarnate-dev/incarnate/session"

	"github.com/incarnate-dev/incarnate/internal/termtext"
)

// newDialog makes a session: a name checked as it is typed, a base
// picked from the store's, and the options `new` takes.
type newDialog struct {
	c        *common
	name     textinput.Model
	bases    []*layers.Base
	base     int
	netOff   bool
	hostname textinput.Model
	binds    textinput.Model
	focus    int // one of the field constants
	taken    func(string) bool
	keys     dialogKeys
	err      string
	hostErr  string // what is wrong with the host name
	baseErr  string // why the host base cannot be used here, if so
	optErr   string // what the other options say is wrong
}

const (
	fieldName = iota
	fieldBase
	fieldNet
	fieldHostname
	fieldBinds
	numFields
)

func newNewDialog(c *common, bases []*layers.Base, defaultBase string, taken func(string) bool) *newDialog {
	d := &newDialog{c: c, name: newInput(c, "name"), taken: taken, keys: newDialogKeys(),
		hostname: newInput(c, "the session's name"), binds: newInput(c, "SRC:DST[:ro|:cow] SRC:DST …")}
	d.hostname.Blur()
	d.binds.Blur()
	if sandbox.Rootless() {
		if err := session.HostBaseProblem(); err != nil {
			d.baseErr = err.Error()
		}
	}
	d.setBases(bases, defaultBase)
	d.validate()
	return d
}

// setBases fills the picker, choosing want, else host, unless it cannot
// be used here (then the first other base).
func (d *newDialog) setBases(bases []*layers.Base, want string) {
	d.bases = bases
	d.base = 0
	for i, b := range bases {
		if b.Name == want {
			d.base = i
			return
		}
	}
	if d.baseErr != "" && len(bases) > 1 && bases[0].Builtin() {
		d.base = 1
	}
}

func (d *newDialog) validate() {
	d.err = validateName("session", d.name.Value(), d.taken)
	d.hostErr, d.optErr = "", ""
	if h := strings.TrimSpace(d.hostname.Value()); h != "" {
		if err := layers.ValidateName("host", h); err != nil {
			d.hostErr = err.Error() // shown under its own field
			return
		}
	}
	if _, err := d.options(); err != nil {
		d.optErr = err.Error()
	}
}

// options reads the option fields as `new` would read its flags.
func (d *newDialog) options() (session.Options, error) {
	opts := session.Options{Hostname: strings.TrimSpace(d.hostname.Value())}
	if d.netOff {
		opts.Net = "none"
	}
	for _, f := range strings.Fields(d.binds.Value()) {
		b, err := session.ParseBind(f)
		if err != nil {
			return opts, err
		}
		opts.Binds = append(opts.Binds, b)
	}
	return opts, opts.Validate()
}

func (d *newDialog) update(msg tea.Msg) (bool, tea.Cmd) {
	if k, ok := msg.(tea.KeyPressMsg); ok {
		if done, cmd, used := d.onKey(k); used {
			return done, cmd
		}
	} else if d.input(d.focus) == nil {
		return false, nil // a paste on the base or network field
	}
	var cmd tea.Cmd
	if in := d.input(d.focus); in != nil {
		*in, cmd = in.Update(msg)
	}
	d.validate()
	return false, cmd
}

// onKey handles the keys of the dialog itself and of the fields that
// are not text; used is false for a key to type into a text field.
func (d *newDialog) onKey(msg tea.KeyPressMsg) (done bool, cmd tea.Cmd, used bool) {
	switch {
	case key.Matches(msg, d.keys.Cancel):
		return true, nil, true
	case key.Matches(msg, d.keys.Submit):
		if d.err != "" || d.hostErr != "" || d.optErr != "" || len(d.bases) == 0 {
			return false, nil, true
		}
		return true, d.create(), true
	case msg.String() == "tab" || msg.String() == "down":
		d.setFocus((d.focus + 1) % numFields)
		return false, nil, true
	case msg.String() == "shift+tab" || msg.String() == "up":
		d.setFocus((d.focus + numFields - 1) % numFields)
		return false, nil, true
	}
	switch d.focus {
	case fieldBase:
		switch {
		case key.Matches(msg, d.keys.Left) && len(d.bases) > 0:
			d.base = (d.base + len(d.bases) - 1) % len(d.bases)
		case key.Matches(msg, d.keys.Right), key.Matches(msg, d.keys.Toggle):
			if len(d.bases) > 0 {
				d.base = (d.base + 1) % len(d.bases)
			}
		}
		return false, nil, true
	case fieldNet:
		if key.Matches(msg, d.keys.Toggle) || key.Matches(msg, d.keys.Left) || key.Matches(msg, d.keys.Right) {
			d.netOff = !d.netOff
		}
		return false, nil, true
	}
	return false, nil, false
}

// input is the text field of focus f, if it is one.
func (d *newDialog) input(f int) *textinput.Model {
	switch f {
	case fieldName:
		return &d.name
	case fieldHostname:
		return &d.hostname
	case fieldBinds:
		return &d.binds
	}
	return nil
}

func (d *newDialog) setFocus(f int) {
	d.focus = f
	for _, g := range []int{fieldName, fieldHostname, fieldBinds} {
		if g == f {
			d.input(g).Focus()
		} else {
			d.input(g).Blur()
		}
	}
}

func (d *newDialog) create() tea.Cmd {
	name, base := d.name.Value(), d.bases[d.base].Name
	opts, _ := d.options() // validated as typed
	st := d.c.store
	return d.c.task("creating "+name, func() (string, error) {
		if _, err := st.Create(name, base, opts); err != nil {
			return "", err
		}
		return fmt.Sprintf("created %s on %s — enter opens a shell in it", name, base), nil
	}, name)
}

func (d *newDialog) view(w int) string {
	st := d.c.styles
	label := func(f int, s string) string { return fieldLabel(st, d.focus == f, s) }
	body := []string{label(fieldName, "Name"), "  " + inputView(d.name)}
	if d.err != "" {
		body = append(body, "  "+st.Dialog.Error.Render("✗ "+d.err))
	} else {
		body = append(body, "  "+st.Status.Success.Render("✓ free"))
	}
	body = append(body, label(fieldBase, "Base"))
	switch {
	case d.bases == nil:
		body = append(body, "  "+st.Muted.Render("reading bases…"))
	default:
		picker := "  "
		for i, b := range d.bases {
			if i == d.base {
				// Brackets as well as colours: the choice must show
				// without colours too (NO_COLOR).
				picker += st.Dialog.Choice.Render("["+b.Name+"]") + " "
			} else {
				picker += st.Text.Render(" "+b.Name+" ") + " "
			}
		}
		body = append(body, picker)
		if b := d.bases[d.base]; b.Builtin() && d.baseErr != "" {
			body = append(body, "  "+st.Dialog.Error.Render(lipgloss.NewStyle().Width(max(20, w-12)).Render(termtext.Visible(d.baseErr))))
		} else if b.Builtin() {
			body = append(body, "  "+st.Muted.Render("this machine's own /, copy-on-write"))
		} else if b.Source != "" {
			body = append(body, "  "+st.Muted.Render("from "+termtext.Visible(b.Source)))
		}
	}
	check := "[ ]"
	if d.netOff {
		check = "[x]"
	}
	body = append(body, label(fieldNet, "Network"), "  "+st.Text.Render(check+" no network (loopback only)"))
	body = append(body, label(fieldHostname, "Host name"), "  "+inputView(d.hostname))
	if d.hostErr != "" {
		body = append(body, "  "+st.Dialog.Error.Render("✗ "+d.hostErr))
	}
	body = append(body, label(fieldBinds, "Binds from the host"), "  "+inputView(d.binds))
	if d.optErr != "" {
		body = append(body, "  "+st.Dialog.Error.Render("✗ "+d.optErr))
	}
	return box(d.c, w, "New session", body, d.ShortHelp())
}

func (d *newDialog) ShortHelp() []key.Binding {
	submit := d.keys.Submit
	submit.SetHelp("enter", "create")
	submit.SetEnabled(d.err == "" && d.hostErr == "" && d.optErr == "" && len(d.bases) > 0)
	next := d.keys.Next
	keys := []key.Binding{next}
	switch d.focus {
	case fieldBase:
		keys = append(keys, d.keys.Left)
	case fieldNet:
		t := d.keys.Toggle
		keys = append(keys, t)
	}
	return append(keys, submit, d.keys.Cancel)
}

func (d *newDialog) FullHelp() [][]key.Binding { return [][]key.Binding{d.ShortHelp()} }
