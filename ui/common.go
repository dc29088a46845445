package ui

import (
	"fmt"
	"strings"
	"sync/atomic"
	"time"

	"charm.land/lipgloss/v2"
	"github.com/charmbracelet/colorprofile"
	"github.com/charmbracelet/x/ansi"

	"github.com/incarnate-dev/incarnate/session"
	"github.com/incarnate-dev/incarnate/themes"
)

// common is what every component shares, as soft-serve's Common is:
// the styles of the current theme, the colour profile they are built
// for, the clock, and the store.
type common struct {
	store   *session.Store
	profile colorprofile.Profile
	styles  *themes.Styles
	now     func() time.Time
	taskIDs atomic.Int64
}

// restyle builds the styles of theme t for the terminal's profile and
// a dark background, or a light one.
func (c *common) restyle(t themes.Theme, dark bool) {
	c.styles = themes.NewStyles(c.profile, dark, t)
}

// ago prints a time relative to now, short enough for a column.
func ago(now, t time.Time) string {
	if t.IsZero() {
		return "never"
	}
	d := now.Sub(t)
	switch {
	case d < time.Minute:
		return "just now"
	case d < time.Hour:
		return fmt.Sprintf("%dm ago", int(d/time.Minute))
	case d < 48*time.Hour:
		return fmt.Sprintf("%dh ago", int(d/time.Hour))
	case d < 60*24*time.Hour:
		return fmt.Sprintf("%dd ago", int(d/(24*time.Hour)))
	}
	return t.Local().Format("2006-01-02")
}

// fit cuts or pads s to exactly w cells.
func fit(s string, w int) string {
	if w <= 0 {
		return ""
	}
	if ansi.StringWidth(s) > w {
		s = ansi.Truncate(s, w, "…")
	}
	return s + strings.Repeat(" ", w-ansi.StringWidth(s))
}

// fitRight is fit, aligned right.
func fitRight(s string, w int) string {
	if ansi.StringWidth(s) > w {
		return ansi.Truncate(s, w, "…")
	}
	return strings.Repeat(" ", w-ansi.StringWidth(s)) + s
}

// plural is "1 path", "2 paths".
func plural(n int, one, many string) string {
	if n == 1 {
		return fmt.Sprintf("%d %s", n, one)
	}
	return fmt.Sprintf("%d %s", n, many)
}

// kindStyle colours a diff kind.
func kindStyle(s *themes.Styles, k session.Kind) lipgloss.Style {
	switch k {
	case session.Added:
		return s.Kind.Added
	case session.Modified:
		return s.Kind.Modified
	case session.Deleted:
		return s.Kind.Deleted
	}
	return s.Kind.Replaced
}
