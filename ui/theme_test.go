package ui

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/charmbracelet/colorprofile"
	"github.com/charmbracelet/x/exp/teatest/v2"

	"github.com/incarnate-dev/incarnate/themes"
)

// One golden a built-in theme, in true colour so the colours show: the
// light theme on a light background, the others on a dark one.
func TestThemeGoldens(t *testing.T) {
	st := threeSessions(t)
	for _, th := range themes.Builtin() {
		t.Run(th.Name, func(t *testing.T) {
			o := options(st, t)
			o.Profile, o.Light, o.Theme = colorprofile.TrueColor, th.Name == "paper", th.Name
			m := New(o)
			tm := start(t, m)
			waitFor(t, tm, "LAST ENTERED")
			tm.Send(press("down"))
			waitScreen(t, m, "web's diff", func(s string) bool { return strings.Contains(s, "/root/note") })
			out := screen(t, tm)
			if !strings.Contains(string(out), "\x1b[3") {
				t.Errorf("no colour in the %s theme's screen", th.Name)
			}
			teatest.RequireEqualOutput(t, out)
		})
	}
}

func TestNoColor(t *testing.T) {
	st := threeSessions(t)
	o := options(st, t)
	o.Profile = colorprofile.TrueColor
	o.NoColor = true
	m := New(o)
	tm := start(t, m)
	waitFor(t, tm, "LAST ENTERED")
	if out := screen(t, tm); strings.Contains(string(out), "\x1b[") {
		t.Errorf("colours with NoColor:\n%q", out)
	}
}

// The config sets theme and sort; t moves to the next theme and writes
// it back, keeping the other keys.
func TestConfigAndThemeCycle(t *testing.T) {
	st := threeSessions(t)
	o := options(st, t)
	cfg := filepath.Join(o.ConfigDir, "config.toml")
	os.WriteFile(cfg, []byte("theme = \"ocean\"\nsort = \"name\"\ndefault_base = \"bb\"\nshell = \"/bin/ash\"\n"), 0o644)
	m := New(o)
	tm := start(t, m)
	waitFor(t, tm, "theme ocean")
	waitScreen(t, m, "sorted by name", func(s string) bool {
		return strings.Contains(s, "sort: name") && strings.Index(s, "api ") < strings.Index(s, "web ")
	})
	tm.Send(press("n"))
	waitScreen(t, m, "bb chosen", func(s string) bool { return chosenBase(m) == "bb" })
	tm.Send(press("esc"))
	tm.Send(press("t"))
	waitScreen(t, m, "the next theme", func(s string) bool { return strings.Contains(s, "theme ember") })
	var got Config
	for i := 0; i < 1000; i++ {
		if got, _ = LoadConfig(cfg); got.Theme == "ember" {
			break
		}
		waitScreen(t, m, "a moment", func(string) bool { return true })
	}
	if want := (Config{Theme: "ember", Sort: "name", DefaultBase: "bb", Shell: "/bin/ash"}); got != want {
		t.Errorf("config after t: %+v, want %+v", got, want)
	}
	screen(t, tm)
}

// A bad user theme names the file and the field in the status line, and
// the default theme is used.
func TestBadThemeFallsBack(t *testing.T) {
	st := threeSessions(t)
	o := options(st, t)
	os.MkdirAll(filepath.Join(o.ConfigDir, "themes"), 0o755)
	os.WriteFile(filepath.Join(o.ConfigDir, "themes", "neon.toml"), []byte("accent = \"#ff00zz\"\n"), 0o644)
	o.Theme = "neon"
	m := New(o)
	tm := start(t, m)
	waitFor(t, tm, "LAST ENTERED")
	out := string(screen(t, tm))
	for _, want := range []string{"neon.toml", `field "accent"`, "theme dusk"} {
		if !strings.Contains(out, want) {
			t.Errorf("screen does not show %q:\n%s", want, out)
		}
	}
}

func TestLoadConfigErrors(t *testing.T) {
	dir := t.TempDir()
	for _, tc := range []struct{ body, want string }{
		{"colour = \"x\"\n", "unknown field colour"},
		{"sort = \"random\"\n", `field "sort"`},
		{"theme = \n", "line 1"},
		{"theme = \"dusk\"\ndefault_base = 5\n", "line 2: default_base must be a base name (a string), got 5"},
		{"shell = true\n", "line 1: shell must be a path (a string), got true"},
		{"sort = [\"name\"]\n", "sort must be a sort order (a string), got a list"},
		{"\n[theme]\nname = \"x\"\n", "line 2: theme must be a theme name (a string), got a table"},
	} {
		p := filepath.Join(dir, "config.toml")
		os.WriteFile(p, []byte(tc.body), 0o644)
		if _, err := LoadConfig(p); err == nil || !strings.Contains(err.Error(), tc.want) || !strings.Contains(err.Error(), p) {
			t.Errorf("config %q: %v, want an error naming the file and %q", tc.body, err, tc.want)
		}
	}
	if c, err := LoadConfig(filepath.Join(dir, "none.toml")); err != nil || c != (Config{}) {
		t.Errorf("missing config: %+v, %v", c, err)
	}
}
