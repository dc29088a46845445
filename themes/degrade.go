package themes

import (
	"fmt"
	"math"
	"strconv"

	"github.com/charmbracelet/colorprofile"
	"github.com/lucasb-eyer/go-colorful"
)

// Terminals with 256 or 16 colours get each of a theme's colours as the
// nearest one they have, by perceptual distance (CIEDE2000). The
// conversion the terminal writer would make (termenv's in Lip Gloss v1,
// colorprofile's in v2) goes by another measure, which makes some
// colours unreadable: v1 made the default theme's #e46876 for deleted
// paths #080808 on 256 colours (tmux's default) and black on 16. Colours
// that are palette indices already pass that writer unchanged.

// forProfile is t with every hex colour replaced by the nearest colour
// of profile p, as a palette index; other profiles keep t as it is. A
// text colour is the nearest that still reads on the terminal's
// background (and the title's and chosen row's text on theirs), as well
// as the theme's own colour does, up to what readable text needs.
func (t Theme) forProfile(p colorprofile.Profile) Theme {
	var first, last int
	switch p {
	case colorprofile.ANSI256:
		first, last = 16, 255 // 0-15 are the terminal's own to choose
	case colorprofile.ANSI:
		first, last = 0, 15
	default:
		return t
	}
	for _, dark := range []bool{false, true} {
		pal := palette{first: first, last: last, dark: dark}
		for _, role := range t.roles() {
			var on string
			switch {
			case role.bg:
				pal.set(role.col, "", 0)
				continue
			case role.on != nil:
				on = pal.get(*role.on)
			default:
				on = terminalBg[dark]
			}
			pal.set(role.col, on, role.least)
		}
	}
	return t
}

// terminalBg is the softer of the backgrounds a theme is made for, dark
// and light: text that reads on it reads on black and white too.
var terminalBg = map[bool]string{true: "#1e1e1e", false: "#eeeeee"}

// role is one of a theme's colours and what it must read against.
type role struct {
	col   *AdaptiveColor
	bg    bool           // a background: the nearest colour, no more
	on    *AdaptiveColor // the background of this text, else the terminal's
	least float64        // the contrast readable text needs
}

// roles are t's colours, backgrounds before the text drawn on them.
func (t *Theme) roles() []role {
	text := func(c *AdaptiveColor) role { return role{col: c, least: 3} }
	return []role{
		{col: &t.TitleBg, bg: true}, {col: &t.SelectedBg, bg: true}, {col: &t.Border, bg: true},
		{col: &t.TitleText, on: &t.TitleBg, least: 3}, {col: &t.SelectedText, on: &t.SelectedBg, least: 3},
		{col: &t.Text, least: 4.5}, text(&t.Muted), text(&t.Accent), text(&t.Running), text(&t.Added),
		text(&t.Modified), text(&t.Deleted), text(&t.Replaced), text(&t.Error), text(&t.Warning), text(&t.Success),
	}
}

// palette maps one variant (light or dark) of colours to a profile's.
type palette struct {
	first, last int
	dark        bool
}

func (p palette) get(c AdaptiveColor) string {
	if p.dark {
		return c.Dark
	}
	return c.Light
}

// set replaces p's variant of c by its nearest palette colour whose
// contrast on background on is at least least (or the original's own,
// when lower); on "" asks no contrast.
func (p palette) set(c *AdaptiveColor, on string, least float64) {
	v := &c.Light
	if p.dark {
		v = &c.Dark
	}
	want, err := colorful.Hex(*v)
	if err != nil {
		return // a palette index already
	}
	back, berr := colorOf(on)
	if berr == nil {
		least = math.Min(least, Contrast(want, back))
	}
	best, bestD := -1, math.Inf(1)
	for i := p.first; i <= p.last; i++ {
		cand := paletteRGB(i)
		if berr == nil && Contrast(cand, back) < least {
			continue
		}
		if d := want.DistanceCIEDE2000(cand); d < bestD {
			best, bestD = i, d
		}
	}
	if best >= 0 {
		*v = strconv.Itoa(best)
	}
}

// colorOf is what a terminal shows for v: a hex colour, or a palette
// index in xterm's palette.
func colorOf(v string) (colorful.Color, error) {
	if c, err := colorful.Hex(v); err == nil {
		return c, nil
	}
	i, err := strconv.Atoi(v)
	if err != nil || i < 0 || i > 255 {
		return colorful.Color{}, fmt.Errorf("colour %q is neither hex nor a palette index", v)
	}
	return paletteRGB(i), nil
}

// Contrast is WCAG 2's contrast ratio of two colours, from 1 to 21.
func Contrast(a, b colorful.Color) float64 {
	la, lb := luminance(a), luminance(b)
	return (math.Max(la, lb) + 0.05) / (math.Min(la, lb) + 0.05)
}

func luminance(c colorful.Color) float64 {
	lin := func(v float64) float64 {
		if v <= 0.03928 {
			return v / 12.92
		}
		return math.Pow((v+0.055)/1.055, 2.4)
	}
	return 0.2126*lin(c.R) + 0.7152*lin(c.G) + 0.0722*lin(c.B)
}

// paletteRGB is colour i of xterm's palette: its 16 defaults, the 6x6x6
// cube and the grey ramp.
func paletteRGB(i int) colorful.Color {
	if i < 16 {
		c, _ := colorful.Hex(ansi16[i])
		return c
	}
	if i >= 232 {
		v := float64(8+10*(i-232)) / 255
		return colorful.Color{R: v, G: v, B: v}
	}
	i -= 16
	level := func(n int) float64 {
		if n == 0 {
			return 0
		}
		return float64(55+40*n) / 255
	}
	return colorful.Color{R: level(i / 36), G: level(i / 6 % 6), B: level(i % 6)}
}

var ansi16 = [16]string{"#000000", "#cd0000", "#00cd00", "#cdcd00", "#0000ee", "#cd00cd", "#00cdcd", "#e5e5e5",
	"#7f7f7f", "#ff0000", "#00ff00", "#ffff00", "#5c5cff", "#ff00ff", "#00ffff", "#ffffff"}
