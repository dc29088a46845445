package themes

import "github.com/charmbracelet/lipgloss"

// Styles are a theme's lipgloss styles, nested by the view that uses them.
type Styles struct {
	Theme Theme

	// Title is the bar at the top; TitleInfo is what follows the name.
	Title, TitleInfo lipgloss.Style
	Text, Muted      lipgloss.Style
	Accent           lipgloss.Style

	List struct {
		Header   lipgloss.Style // column headings
		Row      lipgloss.Style
		Selected lipgloss.Style // the chosen row
		Running  lipgloss.Style // the shell count of a session in use
		Damaged  lipgloss.Style
		Empty    lipgloss.Style // "No sessions yet"
	}
	Detail struct {
		Rule  lipgloss.Style // the line between the list and the pane
		Name  lipgloss.Style
		Label lipgloss.Style
		Value lipgloss.Style
	}
	// Kind colours a diff's letter and path: A, M, D, R.
	Kind   struct{ Added, Modified, Deleted, Replaced lipgloss.Style }
	Status struct {
		Normal, Error, Success, Spinner lipgloss.Style
	}
	Dialog struct {
		Box     lipgloss.Style
		Title   lipgloss.Style
		Warning lipgloss.Style // the question of a destructive action
		Label   lipgloss.Style
		Focused lipgloss.Style // the label of the field with focus
		Error   lipgloss.Style
		Hint    lipgloss.Style
		Choice  lipgloss.Style // the chosen item of a picker
	}
	Help struct {
		Key, Desc, Sep lipgloss.Style
	}
}

// NewStyles builds t's styles for renderer r (its colour profile and
// background decide how the colours come out).
func NewStyles(r *lipgloss.Renderer, theme Theme) *Styles {
	s := &Styles{Theme: theme}
	t := theme.forProfile(r.ColorProfile())
	ns := r.NewStyle
	s.Title = ns().Bold(true).Foreground(t.TitleText).Background(t.TitleBg).Padding(0, 1)
	s.TitleInfo = ns().Foreground(t.Muted).Padding(0, 1)
	s.Text = ns().Foreground(t.Text)
	s.Muted = ns().Foreground(t.Muted)
	s.Accent = ns().Foreground(t.Accent)

	s.List.Header = ns().Bold(true).Foreground(t.Muted)
	s.List.Row = ns().Foreground(t.Text)
	s.List.Selected = ns().Bold(true).Foreground(t.SelectedText).Background(t.SelectedBg)
	s.List.Running = ns().Bold(true).Foreground(t.Running)
	s.List.Damaged = ns().Foreground(t.Error)
	s.List.Empty = ns().Foreground(t.Muted).Italic(true)

	s.Detail.Rule = ns().Foreground(t.Border)
	s.Detail.Name = ns().Bold(true).Foreground(t.Accent)
	s.Detail.Label = ns().Foreground(t.Muted)
	s.Detail.Value = ns().Foreground(t.Text)

	s.Kind.Added = ns().Foreground(t.Added)
	s.Kind.Modified = ns().Foreground(t.Modified)
	s.Kind.Deleted = ns().Foreground(t.Deleted)
	s.Kind.Replaced = ns().Foreground(t.Replaced)

	s.Status.Normal = ns().Foreground(t.Text)
	s.Status.Error = ns().Bold(true).Foreground(t.Error)
	s.Status.Success = ns().Foreground(t.Success)
	s.Status.Spinner = ns().Foreground(t.Accent)

	s.Dialog.Box = ns().Border(lipgloss.RoundedBorder()).BorderForeground(t.Border).Padding(0, 1)
	s.Dialog.Title = ns().Bold(true).Foreground(t.Accent)
	s.Dialog.Warning = ns().Bold(true).Foreground(t.Warning)
	s.Dialog.Label = ns().Foreground(t.Muted)
	s.Dialog.Focused = ns().Bold(true).Foreground(t.Accent)
	s.Dialog.Error = ns().Foreground(t.Error)
	s.Dialog.Hint = ns().Foreground(t.Muted)
	s.Dialog.Choice = ns().Bold(true).Foreground(t.SelectedText).Background(t.SelectedBg)

	s.Help.Key = ns().Foreground(t.Accent)
	s.Help.Desc = ns().Foreground(t.Muted)
	s.Help.Sep = ns().Foreground(t.Border)
	return s
}
