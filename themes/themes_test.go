package themes

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/charmbracelet/colorprofile"
)

func TestBuiltinsAreComplete(t *testing.T) {
	ts := Builtin()
	if len(ts) < 5 {
		t.Fatalf("%d built-in themes, want at least 5", len(ts))
	}
	if ts[0].Name != Default {
		t.Errorf("first theme %q, want the default %q", ts[0].Name, Default)
	}
	seen := map[string]bool{}
	light := false
	for _, th := range ts {
		if seen[th.Name] {
			t.Errorf("theme %q twice", th.Name)
		}
		seen[th.Name] = true
		for name, c := range colourFields(&th) {
			if checkColour(c.Light) != nil || checkColour(c.Dark) != nil {
				t.Errorf("theme %s: %s = %+v, want two valid colours", th.Name, name, c)
			}
		}
		if th.Text.Dark == th.Text.Light && th.Text.Dark < "#8" {
			light = true // dark text whatever the terminal
		}
		NewStyles(colorprofile.TrueColor, true, th)
	}
	if !light {
		t.Error("no light theme")
	}
}

func TestParse(t *testing.T) {
	for _, tc := range []struct {
		name, file, want string // want: "" for success, else a part of the error
		field            string
	}{
		{"plain", `accent = "#ff0000"`, "", ""},
		{"adaptive", `text = { light = "#000", dark = "#fff" }` + "\ninherits = \"paper\"", "", ""},
		{"ansi", `muted = "8"`, "", ""},
		{"syntax", "accent = \n", "line 1", ""},
		{"bad colour", `accent = "#zz0000"`, "not a colour", "accent"},
		{"unknown field", `acent = "#ff0000"`, "no such field", "acent"},
		{"half adaptive", `text = { light = "#000" }`, "both light and dark", "text"},
		{"not a string", `error = 12`, "want a colour", "error"},
		{"bad parent", `inherits = "nope"`, `no theme "nope"`, "inherits"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			th, err := Parse("/x/mine.toml", []byte(tc.file), Builtin())
			if tc.want == "" {
				if err != nil {
					t.Fatalf("got %v, want no error", err)
				}
				if th.Name != "mine" {
					t.Errorf("name %q, want the file's, mine", th.Name)
				}
				return
			}
			var fe *FileError
			if !errors.As(err, &fe) || !strings.Contains(err.Error(), tc.want) || fe.Field != tc.field || !strings.Contains(err.Error(), "/x/mine.toml") {
				t.Fatalf("got %v, want an error naming the file, field %q and %q", err, tc.field, tc.want)
			}
		})
	}
}

func TestLoadDir(t *testing.T) {
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "good.toml"), []byte("name = \"neon\"\naccent = \"#ff00ff\"\n"), 0o644)
	os.WriteFile(filepath.Join(dir, "bad.toml"), []byte("accent = \"purple\"\n"), 0o644)
	ts, errs := Load(dir)
	if len(errs) != 1 || !strings.Contains(errs[0].Error(), "bad.toml") || !strings.Contains(errs[0].Error(), `"accent"`) {
		t.Errorf("errors %v, want one naming bad.toml and accent", errs)
	}
	neon, ok := Find(ts, "neon")
	if !ok || neon.Accent.Dark != "#ff00ff" || neon.Text != Builtin()[0].Text {
		t.Errorf("neon = %+v, %v; want the accent set and the rest inherited", neon, ok)
	}
	if _, ok := Find(ts, "bad"); ok {
		t.Error("a bad theme file was loaded")
	}
	if ts, errs := Load(filepath.Join(dir, "none")); len(errs) != 0 || len(ts) != len(Builtin()) {
		t.Errorf("missing dir: %d themes, errors %v", len(ts), errs)
	}
}
