// Package themes holds incarnate's colour themes and the lipgloss styles
// built from them. A Theme is data: colours only, each adaptive (one
// value for light terminals, one for dark ones). Styles are built from a
// theme for one colour profile and one background (NewStyles), so a test
// can render without colours and a user's terminal with its own.
//
// User themes are TOML files in $XDG_CONFIG_HOME/incarnate/themes/ (see
// Load): every field optional, taken from the theme named by "inherits"
// (the default theme when absent).
package themes

import (
	"image/color"

	"charm.land/lipgloss/v2"
)

// Theme is a set of colours for every part of the interface.
type Theme struct {
	// Name is how --theme, the t key and config.toml name the theme.
	Name string `toml:"name"`
	// Text is ordinary text: session names, values in the detail pane.
	Text AdaptiveColor `toml:"text"`
	// Muted is secondary text: column headings, dates, labels, key help.
	Muted AdaptiveColor `toml:"muted"`
	// Accent marks what has focus: the title, the active dialog field,
	// the keys in the help.
	Accent AdaptiveColor `toml:"accent"`
	// TitleText is the text of the title bar, drawn on TitleBg.
	TitleText AdaptiveColor `toml:"title_text"`
	// TitleBg is the background of the title bar.
	TitleBg AdaptiveColor `toml:"title_bg"`
	// SelectedText is the text of the chosen row, drawn on SelectedBg.
	SelectedText AdaptiveColor `toml:"selected_text"`
	// SelectedBg is the background of the chosen row.
	SelectedBg AdaptiveColor `toml:"selected_bg"`
	// Border draws the lines around panes and dialogs.
	Border AdaptiveColor `toml:"border"`
	// Running marks a session with shells inside it.
	Running AdaptiveColor `toml:"running"`
	// Added colours paths a session added (A in a diff).
	Added AdaptiveColor `toml:"added"`
	// Modified colours paths a session changed (M).
	Modified AdaptiveColor `toml:"modified"`
	// Deleted colours paths a session deleted (D).
	Deleted AdaptiveColor `toml:"deleted"`
	// Replaced colours directories a session replaced whole (R).
	Replaced AdaptiveColor `toml:"replaced"`
	// Error colours failures in the status line and invalid input.
	Error AdaptiveColor `toml:"error"`
	// Warning colours confirmations of destructive actions.
	Warning AdaptiveColor `toml:"warning"`
	// Success colours what went well in the status line.
	Success AdaptiveColor `toml:"success"`
}

// AdaptiveColor is one colour for light terminals and one for dark ones,
// each "#rgb", "#rrggbb" or a palette index "0"-"255". Lip Gloss v2 has
// no such type of strings; a theme keeps the strings, which its files
// and the degradation to a palette (degrade.go) work on.
type AdaptiveColor struct{ Light, Dark string }

// pick is c for a terminal with a dark background, or a light one.
func (c AdaptiveColor) pick(dark bool) color.Color {
	if dark {
		return lipgloss.Color(c.Dark)
	}
	return lipgloss.Color(c.Light)
}

func c(light, dark string) AdaptiveColor {
	return AdaptiveColor{Light: light, Dark: dark}
}

// Default is the theme used when none is chosen, and when a chosen one
// cannot be loaded.
const Default = "dusk"

// Builtin returns the built-in themes, the default first.
func Builtin() []Theme {
	return []Theme{
		{
			Name: "dusk", Text: c("#1f1f28", "#dcd7ba"), Muted: c("#6c6f85", "#727169"),
			Accent: c("#7e57c2", "#957fb8"), TitleText: c("#ffffff", "#1f1f28"), TitleBg: c("#7e57c2", "#957fb8"),
			SelectedText: c("#1f1f28", "#1f1f28"), SelectedBg: c("#d8cdf0", "#7fb4ca"), Border: c("#b8b4c8", "#54546d"),
			Running: c("#2e7d32", "#98bb6c"), Added: c("#2e7d32", "#98bb6c"), Modified: c("#b26a00", "#e6c384"),
			Deleted: c("#c62828", "#e46876"), Replaced: c("#1565c0", "#7fb4ca"), Error: c("#c62828", "#ff5d62"),
			Warning: c("#b26a00", "#ffa066"), Success: c("#2e7d32", "#98bb6c"),
		},
		{
			Name: "forest", Text: c("#243024", "#d3c6aa"), Muted: c("#6b7a6b", "#859289"),
			Accent: c("#3a7d44", "#a7c080"), TitleText: c("#ffffff", "#2d353b"), TitleBg: c("#3a7d44", "#a7c080"),
			SelectedText: c("#243024", "#2d353b"), SelectedBg: c("#cfe3c6", "#83c092"), Border: c("#a9b8a0", "#475258"),
			Running: c("#3a7d44", "#a7c080"), Added: c("#3a7d44", "#a7c080"), Modified: c("#9a6b00", "#dbbc7f"),
			Deleted: c("#b3322f", "#e67e80"), Replaced: c("#2f6f8f", "#7fbbb3"), Error: c("#b3322f", "#e67e80"),
			Warning: c("#9a6b00", "#e69875"), Success: c("#3a7d44", "#a7c080"),
		},
		{
			Name: "ocean", Text: c("#1b2b34", "#c0c5ce"), Muted: c("#65737e", "#65737e"),
			Accent: c("#0b6fa4", "#6699cc"), TitleText: c("#ffffff", "#1b2b34"), TitleBg: c("#0b6fa4", "#6699cc"),
			SelectedText: c("#1b2b34", "#1b2b34"), SelectedBg: c("#c5dcef", "#5fb3b3"), Border: c("#a7b6c2", "#343d46"),
			Running: c("#2f855a", "#99c794"), Added: c("#2f855a", "#99c794"), Modified: c("#b7791f", "#fac863"),
			Deleted: c("#c53030", "#ec5f67"), Replaced: c("#6b46c1", "#c594c5"), Error: c("#c53030", "#ec5f67"),
			Warning: c("#c05621", "#f99157"), Success: c("#2f855a", "#99c794"),
		},
		{
			Name: "ember", Text: c("#2b1d16", "#ebdbb2"), Muted: c("#7c6f64", "#928374"),
			Accent: c("#af3a03", "#fe8019"), TitleText: c("#ffffff", "#282828"), TitleBg: c("#af3a03", "#fe8019"),
			SelectedText: c("#2b1d16", "#282828"), SelectedBg: c("#f2d5b8", "#fabd2f"), Border: c("#c9b8a6", "#504945"),
			Running: c("#79740e", "#b8bb26"), Added: c("#79740e", "#b8bb26"), Modified: c("#b57614", "#fabd2f"),
			Deleted: c("#9d0006", "#fb4934"), Replaced: c("#076678", "#83a598"), Error: c("#9d0006", "#fb4934"),
			Warning: c("#af3a03", "#fe8019"), Success: c("#79740e", "#b8bb26"),
		},
		{
			// A light theme: the same on every terminal, dark text on
			// light backgrounds (meant for light terminals).
			Name: "paper", Text: c("#1a1a1a", "#1a1a1a"), Muted: c("#6e6e6e", "#6e6e6e"),
			Accent: c("#0050b3", "#0050b3"), TitleText: c("#ffffff", "#ffffff"), TitleBg: c("#0050b3", "#0050b3"),
			SelectedText: c("#1a1a1a", "#1a1a1a"), SelectedBg: c("#dbe8fb", "#dbe8fb"), Border: c("#bdbdbd", "#bdbdbd"),
			Running: c("#1b7f3b", "#1b7f3b"), Added: c("#1b7f3b", "#1b7f3b"), Modified: c("#9a5b00", "#9a5b00"),
			Deleted: c("#b00020", "#b00020"), Replaced: c("#5a32a3", "#5a32a3"), Error: c("#b00020", "#b00020"),
			Warning: c("#9a5b00", "#9a5b00"), Success: c("#1b7f3b", "#1b7f3b"),
		},
		{
			// The 16 ANSI colours only: follows the terminal's own palette.
			Name: "ansi", Text: c("0", "15"), Muted: c("8", "7"),
			Accent: c("5", "13"), TitleText: c("15", "0"), TitleBg: c("5", "13"),
			SelectedText: c("0", "0"), SelectedBg: c("14", "6"), Border: c("7", "8"),
			Running: c("2", "10"), Added: c("2", "10"), Modified: c("3", "11"),
			Deleted: c("1", "9"), Replaced: c("4", "12"), Error: c("1", "9"),
			Warning: c("3", "11"), Success: c("2", "10"),
		},
	}
}

// Find returns the theme called name among ts.
func Find(ts []Theme, name string) (Theme, bool) {
	for _, t := range ts {
		if t.Name == name {
			return t, true
		}
	}
	return Theme{}, false
}
