package themes

import (
	"image/color"

	"charm.land/lipgloss/v2"
	"github.com/charmbracelet/colorprofile"
)

// Styles are a theme's lipgloss styles, nested by the view that uses them.
type Styles struct {
	Theme Theme
	// Dark is the background the colours were picked for.
	Dark bool

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

// NewStyles builds theme's styles for a terminal of colour profile p
// with a dark background (or a light one). Lip Gloss v2 styles write
// their colours as they are given: the colours here are already the
// profile's (forProfile), and none at all without colours (NO_COLOR).
func NewStyles(p colorprofile.Profile, dark bool, theme Theme) *Styles {
	s := &Styles{Theme: theme, Dark: dark}
	t := theme.forProfile(p)
	col := func(c AdaptiveColor) color.Color {
		if p < colorprofile.ANSI {
			return lipgloss.NoColor{}
		}
		return c.pick(dark)
	}
	s.build(t, col)
	return s
}

// build makes every style of t, with col choosing each colour.
func (s *Styles) build(t Theme, col func(AdaptiveColor) color.Color) {
	ns := lipgloss.NewStyle
	s.Title = ns().Bold(true).Foreground(col(t.TitleText)).Background(col(t.TitleBg)).Padding(0, 1)
	s.TitleInfo = ns().Foreground(col(t.Muted)).Padding(0, 1)
	s.Text = ns().Foreground(col(t.Text))
	s.Muted = ns().Foreground(col(t.Muted))
	s.Accent = ns().Foreground(col(t.Accent))

	s.List.Header = ns().Bold(true).Foreground(col(t.Muted))
	s.List.Row = ns().Foreground(col(t.Text))
	s.List.Selected = ns().Bold(true).Foreground(col(t.SelectedText)).Background(col(t.SelectedBg))
	s.List.Running = ns().Bold(true).Foreground(col(t.Running))
	s.List.Damaged = ns().Foreground(col(t.Error))
	s.List.Empty = ns().Foreground(col(t.Muted)).Italic(true)

	s.Detail.Rule = ns().Foreground(col(t.Border))
	s.Detail.Name = ns().Bold(true).Foreground(col(t.Accent))
	s.Detail.Label = ns().Foreground(col(t.Muted))
	s.Detail.Value = ns().Foreground(col(t.Text))

	s.Kind.Added = ns().Foreground(col(t.Added))
	s.Kind.Modified = ns().Foreground(col(t.Modified))
	s.Kind.Deleted = ns().Foreground(col(t.Deleted))
	s.Kind.Replaced = ns().Foreground(col(t.Replaced))

	s.Status.Normal = ns().Foreground(col(t.Text))
	s.Status.Error = ns().Bold(true).Foreground(col(t.Error))
	s.Status.Success = ns().Foreground(col(t.Success))
	s.Status.Spinner = ns().Foreground(col(t.Accent))

	s.Dialog.Box = ns().Border(lipgloss.RoundedBorder()).BorderForeground(col(t.Border)).Padding(0, 1)
	s.Dialog.Title = ns().Bold(true).Foreground(col(t.Accent))
	s.Dialog.Warning = ns().Bold(true).Foreground(col(t.Warning))
	s.Dialog.Label = ns().Foreground(col(t.Muted))
	s.Dialog.Focused = ns().Bold(true).Foreground(col(t.Accent))
	s.Dialog.Error = ns().Foreground(col(t.Error))
	s.Dialog.Hint = ns().Foreground(col(t.Muted))
	s.Dialog.Choice = ns().Bold(true).Foreground(col(t.SelectedText)).Background(col(t.SelectedBg))

	s.Help.Key = ns().Foreground(col(t.Accent))
	s.Help.Desc = ns().Foreground(col(t.Muted))
	s.Help.Sep = ns().Foreground(col(t.Border))
}
