package ui

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
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

// LoadConfig reads path; a missing file is an empty config. A key it
// does not know is an error naming it, not silently ignored.
func LoadConfig(path string) (Config, error) {
	var c Config
	md, err := toml.DecodeFile(path, &c)
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
	if und := md.Undecoded(); len(und) > 0 {
		k := und[0]
		return c, fmt.Errorf("config %s: line %d: unknown field %s (known: theme, sort, default_base, shell)", path, keyLine(path, k[len(k)-1]), k)
	}
	if c.Sort != "" {
		if _, ok := parseSort(c.Sort); !ok {
			return c, fmt.Errorf("config %s: line %d: field \"sort\": %q is not one of %s", path, keyLine(path, "sort"), c.Sort, strings.Join(sortNames[:], ", "))
		}
	}
	return c, nil
}

// keyLine is the line of path where key is set (0 when it cannot tell):
// the decoder knows the lines of syntax errors only.
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
