package themes

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"sort"
	"strconv"
	"strings"

	"github.com/BurntSushi/toml"
)

// A user theme file looks like this; every colour is optional and taken
// from the inherited theme when absent. A colour is "#rgb", "#rrggbb" or
// an ANSI number 0-255, either one value for every terminal or a table
// with one for light and one for dark backgrounds:
//
//	name = "mine"          # default: the file's name without .toml
//	inherits = "dusk"      # default: the default theme
//	accent = "#ff79c6"
//	text = { light = "#222222", dark = "#f8f8f2" }

// FileError is a theme file that could not be used: which file, which
// field (empty for a syntax error) and why.
type FileError struct {
	Path  string
	Field string
	Err   error
}

func (e *FileError) Error() string {
	if e.Field == "" {
		return fmt.Sprintf("theme %s: %v", e.Path, e.Err)
	}
	return fmt.Sprintf("theme %s: field %q: %v", e.Path, e.Field, e.Err)
}

func (e *FileError) Unwrap() error { return e.Err }

// Load reads every *.toml theme in dir, after the built-in themes, and
// returns them all with one error for each file it could not use (a bad
// file is left out, never half-applied). A missing dir is no error. A
// user theme may replace a built-in one of the same name.
func Load(dir string) ([]Theme, []error) {
	all := Builtin()
	paths, _ := filepath.Glob(filepath.Join(dir, "*.toml"))
	sort.Strings(paths)
	var errs []error
	for _, p := range paths {
		data, err := os.ReadFile(p)
		if err != nil {
			errs = append(errs, &FileError{Path: p, Err: err})
			continue
		}
		t, err := Parse(p, data, all)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		if i := index(all, t.Name); i >= 0 {
			all[i] = t
		} else {
			all = append(all, t)
		}
	}
	return all, errs
}

func index(ts []Theme, name string) int {
	for i, t := range ts {
		if t.Name == name {
			return i
		}
	}
	return -1
}

// Parse reads one theme file's content; path names it in errors and
// gives the default name. known are the themes it may inherit from.
func Parse(path string, data []byte, known []Theme) (Theme, error) {
	var raw map[string]any
	if _, err := toml.Decode(string(data), &raw); err != nil {
		var pe toml.ParseError
		if errors.As(err, &pe) {
			return Theme{}, &FileError{Path: path, Err: fmt.Errorf("line %d: %s", pe.Position.Line, pe.Message)}
		}
		return Theme{}, &FileError{Path: path, Err: err}
	}
	str := func(key string) (string, error) {
		v, ok := raw[key]
		if !ok {
			return "", nil
		}
		s, ok := v.(string)
		if !ok || s == "" {
			return "", &FileError{Path: path, Field: key, Err: fmt.Errorf("want a non-empty string, got %v", v)}
		}
		return s, nil
	}
	name, err := str("name")
	if err != nil {
		return Theme{}, err
	}
	if name == "" {
		name = strings.TrimSuffix(filepath.Base(path), ".toml")
	}
	parent, err := str("inherits")
	if err != nil {
		return Theme{}, err
	}
	if parent == "" {
		parent = Default
	}
	t, ok := Find(known, parent)
	if !ok {
		return Theme{}, &FileError{Path: path, Field: "inherits", Err: fmt.Errorf("no theme %q", parent)}
	}
	t.Name = name
	fields := colourFields(&t)
	keys := make([]string, 0, len(raw))
	for k := range raw {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		if k == "name" || k == "inherits" {
			continue
		}
		dst, ok := fields[k]
		if !ok {
			return Theme{}, &FileError{Path: path, Field: k, Err: fmt.Errorf("no such field (known: %s)", strings.Join(FieldNames(), ", "))}
		}
		col, err := parseColour(raw[k])
		if err != nil {
			return Theme{}, &FileError{Path: path, Field: k, Err: err}
		}
		*dst = col
	}
	return t, nil
}

// FieldNames are the colour fields a theme file may set.
func FieldNames() []string {
	var t Theme
	names := make([]string, 0, 16)
	for k := range colourFields(&t) {
		names = append(names, k)
	}
	sort.Strings(names)
	return names
}

// colourFields maps each toml name to its field in t.
func colourFields(t *Theme) map[string]*AdaptiveColor {
	out := map[string]*AdaptiveColor{}
	v := reflect.ValueOf(t).Elem()
	for i := 0; i < v.NumField(); i++ {
		if p, ok := v.Field(i).Addr().Interface().(*AdaptiveColor); ok {
			out[v.Type().Field(i).Tag.Get("toml")] = p
		}
	}
	return out
}

func parseColour(v any) (AdaptiveColor, error) {
	switch v := v.(type) {
	case string:
		if err := checkColour(v); err != nil {
			return AdaptiveColor{}, err
		}
		return AdaptiveColor{Light: v, Dark: v}, nil
	case map[string]any:
		var c AdaptiveColor
		for k, x := range v {
			s, ok := x.(string)
			if !ok {
				return c, fmt.Errorf("%s: want a colour string, got %v", k, x)
			}
			if err := checkColour(s); err != nil {
				return c, fmt.Errorf("%s: %w", k, err)
			}
			switch k {
			case "light":
				c.Light = s
			case "dark":
				c.Dark = s
			default:
				return c, fmt.Errorf("unknown key %q: want light and dark", k)
			}
		}
		if c.Light == "" || c.Dark == "" {
			return c, errors.New("want both light and dark")
		}
		return c, nil
	}
	return AdaptiveColor{}, fmt.Errorf("want a colour string or { light = ..., dark = ... }, got %v", v)
}

// checkColour accepts what lipgloss renders: #rgb, #rrggbb, or 0-255.
func checkColour(s string) error {
	if h, ok := strings.CutPrefix(s, "#"); ok {
		if len(h) == 3 || len(h) == 6 {
			if _, err := strconv.ParseUint(h, 16, 32); err == nil {
				return nil
			}
		}
	} else if n, err := strconv.Atoi(s); err == nil && n >= 0 && n <= 255 {
		return nil
	}
	return fmt.Errorf("%q is not a colour: want #rgb, #rrggbb or an ANSI number 0-255", s)
}
