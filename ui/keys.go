package ui

import "charm.land/bubbles/v2/key"

// KeyMap is every key of the session list, as data: the footer's short
// help and the ? screen are both generated from it, and a binding that
// does not apply (no session to enter) is disabled, which hides it.
type KeyMap struct {
	Up, Down, PageUp, PageDown, Home, End key.Binding

	Enter, New, Discard, Reset, Rename, Clone, Commit, Stop    key.Binding
	Diff, Bases, Sort, Filter, Theme, Refresh, Log, Help, Quit key.Binding
}

// DefaultKeyMap is the keys as lazydocker and k9s users expect them.
func DefaultKeyMap() *KeyMap {
	b := func(keys []string, k, help string) key.Binding {
		return key.NewBinding(key.WithKeys(keys...), key.WithHelp(k, help))
	}
	return &KeyMap{
		Up:       b([]string{"up", "k"}, "↑/k", "up"),
		Down:     b([]string{"down", "j"}, "↓/j", "down"),
		PageUp:   b([]string{"pgup", "ctrl+u"}, "pgup", "page up"),
		PageDown: b([]string{"pgdown", "ctrl+d"}, "pgdn", "page down"),
		Home:     b([]string{"home", "g"}, "g", "first"),
		End:      b([]string{"end", "G"}, "G", "last"),
		Enter:    b([]string{"enter"}, "enter", "shell"),
		New:      b([]string{"n"}, "n", "new"),
		Discard:  b([]string{"d", "delete"}, "d", "discard"),
		Reset:    b([]string{"r"}, "r", "reset"),
		Rename:   b([]string{"R"}, "R", "rename"),
		Clone:    b([]string{"c"}, "c", "clone"),
		Commit:   b([]string{"C"}, "C", "commit as base"),
		Stop:     b([]string{"x"}, "x", "stop"),
		Diff:     b([]string{"D"}, "D", "diff"),
		Bases:    b([]string{"b"}, "b", "bases"),
		Sort:     b([]string{"s"}, "s", "sort"),
		Filter:   b([]string{"/"}, "/", "filter"),
		Theme:    b([]string{"t"}, "t", "theme"),
		Refresh:  b([]string{"ctrl+r", "f5"}, "ctrl+r", "refresh"),
		Log:      b([]string{"L"}, "L", "messages"),
		Help:     b([]string{"?"}, "?", "help"),
		Quit:     b([]string{"q", "ctrl+c"}, "q", "quit"),
	}
}

// sessionKeys are the bindings that need a chosen session.
func (k *KeyMap) sessionKeys() []*key.Binding {
	return []*key.Binding{&k.Enter, &k.Discard, &k.Reset, &k.Rename, &k.Clone, &k.Commit, &k.Stop, &k.Diff,
		&k.Up, &k.Down, &k.PageUp, &k.PageDown, &k.Home, &k.End}
}

// setHaveSession enables the session keys when one is chosen.
func (k *KeyMap) setHaveSession(ok bool) {
	for _, b := range k.sessionKeys() {
		b.SetEnabled(ok)
	}
}

// ShortHelp is the footer line.
func (k *KeyMap) ShortHelp() []key.Binding {
	return []key.Binding{k.Enter, k.New, k.Discard, k.Diff, k.Bases, k.Filter, k.Help, k.Quit}
}

// FullHelp is the ? screen, a column a group.
func (k *KeyMap) FullHelp() [][]key.Binding {
	return [][]key.Binding{
		{k.Up, k.Down, k.PageUp, k.PageDown, k.Home, k.End},
		{k.Enter, k.New, k.Discard, k.Reset, k.Rename, k.Clone, k.Commit, k.Stop},
		{k.Diff, k.Bases, k.Sort, k.Filter, k.Theme, k.Refresh, k.Log, k.Help, k.Quit},
	}
}

// listKeys are the keys of a scrolled view other than the session list
// (diff, bases): movement, act, back.
type listKeys struct {
	Up, Down, PageUp, PageDown, Home, End key.Binding
	Enter, Remove, Import, Back, Quit     key.Binding
	// Pull: the bases view's, off elsewhere.
	Pull key.Binding
	// Mark and Apply: the diff view's, off elsewhere.
	Mark, Apply key.Binding
}

func newListKeys(enter, remove, imp string) *listKeys {
	k := DefaultKeyMap()
	l := &listKeys{
		Up: k.Up, Down: k.Down, PageUp: k.PageUp, PageDown: k.PageDown, Home: k.Home, End: k.End,
		Enter:  key.NewBinding(key.WithKeys("enter"), key.WithHelp("enter", enter)),
		Remove: key.NewBinding(key.WithKeys("d", "delete"), key.WithHelp("d", remove)),
		Import: key.NewBinding(key.WithKeys("i"), key.WithHelp("i", imp)),
		Pull:   key.NewBinding(key.WithKeys("p"), key.WithHelp("p", "pull")),
		Back:   key.NewBinding(key.WithKeys("esc", "q"), key.WithHelp("esc", "back")),
		Quit:   key.NewBinding(key.WithKeys("ctrl+c"), key.WithHelp("ctrl+c", "quit")),
		Mark:   key.NewBinding(key.WithKeys("space"), key.WithHelp("space", "mark")),
		Apply:  key.NewBinding(key.WithKeys("a"), key.WithHelp("a", "apply to host")),
	}
	l.Mark.SetEnabled(false)
	l.Apply.SetEnabled(false)
	l.Pull.SetEnabled(false)
	l.Enter.SetEnabled(enter != "")
	l.Remove.SetEnabled(remove != "")
	l.Import.SetEnabled(imp != "")
	return l
}

func (k *listKeys) ShortHelp() []key.Binding {
	return []key.Binding{k.Up, k.Down, k.Enter, k.Mark, k.Apply, k.Remove, k.Import, k.Pull, k.Back}
}

func (k *listKeys) FullHelp() [][]key.Binding {
	return [][]key.Binding{{k.Up, k.Down, k.PageUp, k.PageDown, k.Home, k.End}, {k.Enter, k.Mark, k.Apply, k.Remove, k.Import, k.Pull, k.Back, k.Quit}}
}

// filterHelp is the footer while a filter is typed.
var filterHelp = []key.Binding{
	key.NewBinding(key.WithKeys("enter"), key.WithHelp("enter", "keep filter")),
	key.NewBinding(key.WithKeys("esc"), key.WithHelp("esc", "clear")),
	key.NewBinding(key.WithKeys("up", "down"), key.WithHelp("↑/↓", "move")),
}
