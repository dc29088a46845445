package themes

import (
	"regexp"
	"strconv"
	"strings"
	"testing"

	"charm.land/lipgloss/v2"
	"github.com/charmbracelet/colorprofile"
	"github.com/lucasb-eyer/go-colorful"
)

// Every built-in theme stays readable in every colour profile: what its
// styles write to the terminal, read back as the terminal shows it
// (xterm's palette), gives each text enough contrast on the terminal's
// background (dark and light, the darkest and a softer one), and the
// title and the chosen row on their own backgrounds.
func TestThemesReadableInEveryProfile(t *testing.T) {
	backgrounds := map[bool][]string{true: {"#000000", "#1e1e1e"}, false: {"#ffffff", "#eeeeee"}}
	for _, theme := range Builtin() {
		for _, p := range []colorprofile.Profile{colorprofile.TrueColor, colorprofile.ANSI256, colorprofile.ANSI} {
			for _, dark := range []bool{true, false} {
				if theme.Name == "paper" && dark {
					continue // a light theme, for light terminals (theme.go)
				}
				if theme.Name == "ansi" && !dark {
					// Its colours are the terminal's palette indices, which
					// the terminal's own theme chooses: xterm's default
					// green and yellow (the checked palette) read on no
					// white, in any theme; light terminal themes darken them.
					continue
				}
				s := NewStyles(p, dark, theme)
				where := theme.Name + " " + profileName(p) + " " + map[bool]string{true: "dark", false: "light"}[dark]
				for name, st := range map[string]lipgloss.Style{
					"text": s.Text, "muted": s.Muted, "accent": s.Accent, "running": s.List.Running,
					"added": s.Kind.Added, "modified": s.Kind.Modified, "deleted": s.Kind.Deleted,
					"replaced": s.Kind.Replaced, "error": s.Status.Error, "warning": s.Dialog.Warning,
					"success": s.Status.Success, "title": s.Title, "selected row": s.List.Selected,
				} {
					fg, bg := sgrColors(t, written(p, st.Render("x")))
					if fg == nil {
						t.Errorf("%s: %s writes no colour", where, name)
						continue
					}
					least := 3.0 // bold, or coloured marks beside the text
					if name == "text" {
						least = 4.5
					}
					backs := backgrounds[dark]
					if bg != nil {
						backs = []string{bg.Hex()}
					}
					for _, b := range backs {
						back, _ := colorful.Hex(b)
						if c := Contrast(*fg, back); c < least {
							t.Errorf("%s: %s %s on %s: contrast %.2f, want at least %.1f", where, name, fg.Hex(), b, c, least)
						}
					}
				}
			}
		}
	}
}

// written is what reaches a terminal of profile p when out is drawn:
// Bubble Tea v2 passes every frame through colorprofile's conversion.
func written(p colorprofile.Profile, out string) string {
	var b strings.Builder
	w := &colorprofile.Writer{Forward: &b, Profile: p}
	_, _ = w.WriteString(out)
	return b.String()
}

// sgrColors reads the foreground and background a rendered string sets:
// 38;2;R;G;B, 38;5;N and the 16 colours' 30-37, 90-97 (and 4x, 10x).
func sgrColors(t *testing.T, out string) (fg, bg *colorful.Color) {
	for _, seq := range sgr.FindAllStringSubmatch(out, -1) {
		params := strings.Split(seq[1], ";")
		for i := 0; i < len(params); i++ {
			n, _ := strconv.Atoi(params[i])
			var c colorful.Color
			target := &fg
			switch {
			case n == 38 || n == 48:
				if n == 48 {
					target = &bg
				}
				if i+2 < len(params) && params[i+1] == "5" {
					k, _ := strconv.Atoi(params[i+2])
					c, i = paletteRGB(k), i+2
				} else if i+4 < len(params) && params[i+1] == "2" {
					rgb := [3]float64{}
					for j := range rgb {
						v, _ := strconv.Atoi(params[i+2+j])
						rgb[j] = float64(v) / 255
					}
					c, i = colorful.Color{R: rgb[0], G: rgb[1], B: rgb[2]}, i+4
				} else {
					t.Fatalf("unread colour in %q", out)
				}
			case n >= 30 && n <= 37:
				c = paletteRGB(n - 30)
			case n >= 90 && n <= 97:
				c = paletteRGB(n - 90 + 8)
			case n >= 40 && n <= 47:
				c, target = paletteRGB(n-40), &bg
			case n >= 100 && n <= 107:
				c, target = paletteRGB(n-100+8), &bg
			default:
				continue
			}
			*target = &c
		}
	}
	return fg, bg
}

var sgr = regexp.MustCompile("\x1b\\[([0-9;]*)m")

// Without colours (NO_COLOR) no style writes one: what matters is shown
// by other means (bold, the › marker, the letters A M D R).
func TestNoColorWritesNone(t *testing.T) {
	for _, theme := range Builtin() {
		s := NewStyles(colorprofile.ASCII, true, theme)
		for _, st := range []lipgloss.Style{s.Title, s.Text, s.Muted, s.Accent, s.List.Selected, s.List.Running,
			s.Kind.Added, s.Kind.Deleted, s.Status.Error, s.Dialog.Warning, s.Dialog.Box} {
			if out := st.Render("x"); strings.Contains(out, "[3") || strings.Contains(out, "[4") || strings.Contains(out, ";5;") {
				t.Errorf("%s: a style writes a colour without colours: %q", theme.Name, out)
			}
		}
	}
}

func profileName(p colorprofile.Profile) string {
	return map[colorprofile.Profile]string{colorprofile.TrueColor: "truecolor", colorprofile.ANSI256: "256", colorprofile.ANSI: "16"}[p]
}
