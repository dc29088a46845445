package ui

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/BurntSushi/toml"
)

// Config is $XDG_CONFIG_HOME/incarnate/config.toml:
//
//	theme = "dusk"           # a built-in theme or one in themes/*.toml
//	sort = "last entered"    # or name, created, size, changes
//	default_base = "host"    # the base the new dialog starts on
//	shell = "/bin/bash"      # what enter starts (default: $SHELL, else /bin/sh)
//
// The TUI writes it back when t changes the theme.
type Config struct {
	Theme       string `toml:"theme,omitempty"`
	Sort        string `toml:"sort,omitempty"`
	DefaultBase string `toml:"default_base,omitempty"`
	Shell       string `toml:"shell,omitempty"`
}

// ConfigDir is $XDG_CONFIG_HOME/incarnate, else ~/.config/incarnate.
func ConfigDir() string {
	dir := os.Getenv("XDG_CONFIG_HOME")
	if dir == "" {
		home, err := os.UserHomeDir()
		if err != nil {
			return ""
		}
		dir = filepath.Join(home, ".config")
	}
	return filepath.Join(dir, "incarnate")
}

// configField is a key of config.toml, what it holds as a message says
// it, and where it goes; every one is a string.
type configField struct {
	key, holds string
	to         *string
}

func configFields(c *Config) []configField {
	return []configField{
		{"theme", "a theme name", &c.Theme},
		{"sort", "a sort order", &c.Sort},
		{"default_base", "a base name", &c.DefaultBase},
		{"shell", "a path", &c.Shell},
	}
}

// LoadConfig reads path; a missing file is an empty config. A mistake
// (bad syntax, a key it does not know, a value of the wrong type) is an
// error naming the file and the line. It is decoded loosely first, so
// that a wrong type is said in the config's words, not Go's.
func LoadConfig(path string) (Config, error) {
	var raw map[string]any
	md, err := toml.DecodeFile(path, &raw)
	if errors.Is(err, fs.ErrNotExist) {
		return Config{}, nil
	}
	if err != nil {
		var pe toml.ParseError
		if errors.As(err, &pe) {
			return Config{}, fmt.Errorf("config %s: line %d: %s", path, pe.Position.Line, pe.Message)
		}
		return Config{}, fmt.Errorf("config %s: %w", path, err)
	}
	var c Config
	fields := configFields(&c)
	for _, k := range md.Keys() {
		if len(k) > 1 {
			continue // inside a table, which its key has refused
		}
		key, at := k[0], keyLine(path, k[0])
		i := slices.IndexFunc(fields, func(f configField) bool { return f.key == key })
		if i < 0 {
			return Config{}, fmt.Errorf("config %s: line %d: unknown field %s (known: %s)", path, at, key, knownKeys(fields))
		}
		v, ok := raw[key].(string)
		if !ok {
			return Config{}, fmt.Errorf("config %s: line %d: %s must be %s (a string), got %s", path, at, key, fields[i].holds, tomlValue(raw[key]))
		}
		*fields[i].to = v
	}
	if c.Sort != "" {
		if _, ok := parseSort(c.Sort); !ok {
			return c, fmt.Errorf("config %s: line %d: field \"sort\": %q is not one of %s", path, keyLine(path, "sort"), c.Sort, strings.Join(sortNames[:], ", "))
		}
	}
	return c, nil
}

func knownKeys(fields []configField) string {
	keys := make([]string, len(fields))
	for i, f := range fields {
		keys[i] = f.key
	}
	return strings.Join(keys, ", ")
}

// tomlValue says what a value that should have been a string is.
func tomlValue(v any) string {
	switch v.(type) {
	case []any, []map[string]any:
		return "a list"
	case map[string]any:
		return "a table"
	}
	return fmt.Sprint(v)
}

// keyLine is the line of path where key is set, or its table begins (0
// when it cannot tell): the decoder knows the lines of syntax errors only.
func keyLine(path, key string) int {
	data, err := os.ReadFile(path)
	if err != nil {
		return 0
	}
	for i, line := range strings.Split(string(data), "\n") {
		name, _, ok := strings.Cut(line, "=")
		if ok && strings.Trim(strings.TrimSpace(name), `"'`) == key {
			return i + 1
		}
		if t := strings.Trim(strings.TrimSpace(line), "[]"); strings.HasPrefix(strings.TrimSpace(line), "[") && strings.Trim(strings.TrimSpace(t), `"'`) == key {
			return i + 1
		}
	}
	return 0
}

// SaveConfig writes c to path atomically (a temp file renamed over it).
func SaveConfig(path string, c Config) error {
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return err
	}
	f, err := os.CreateTemp(filepath.Dir(path), ".config-*.toml")
	if err != nil {
		return err
	}
	defer os.Remove(f.Name())
	if err := toml.NewEncoder(f).Encode(c); err != nil {
		f.Close()
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	return os.Rename(f.Name(), path)
}
