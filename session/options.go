package session

import (
	"errors"
	"fmt"
	"os"
	"path"
	"strings"

	"app/incarnate/layers"
)

// Options are a session's settings, chosen at `new` and kept in its
// metadata so every entry gets the same sandbox.
type Options struct {
	// Net is "host" (share the host's network, the default) or "none" (a
	// network namespace of its own with only loopback).
	Net string `json:"net,omitempty"`
	// Binds are host paths made visible inside.
	Binds []BindMount `json:"binds,omitempty"`
	// Hostname replaces the session's name as its host name.
	Hostname string `json:"hostname,omitempty"`
	// Shell is what enter starts in this session, unless told otherwise.
	Shell string `json:"shell,omitempty"`
}

// BindMount is one --bind SRC:DST[:ro].
type BindMount struct {
	Src      string `json:"src"`
	Dst      string `json:"dst"`
	ReadOnly bool   `json:"ro,omitempty"`
}

// ParseBind reads SRC:DST[:ro]; both paths must be absolute.
func ParseBind(s string) (BindMount, error) {
	parts := strings.Split(s, ":")
	b := BindMount{}
	switch {
	case len(parts) == 2:
	case len(parts) == 3 && (parts[2] == "ro" || parts[2] == "rw"):
		b.ReadOnly = parts[2] == "ro"
	default:
		return b, fmt.Errorf("--bind %q: want SRC:DST or SRC:DST:ro, with absolute paths and no ':' in them", s)
	}
	b.Src, b.Dst = parts[0], parts[1]
	return b, nil
}

// Validate checks the options before anything touches the disk.
func (o *Options) Validate() error {
	switch o.Net {
	case "", "host", "none":
	default:
		return fmt.Errorf("--net %q: want host or none", o.Net)
	}
	if o.Shell != "" && (!path.IsAbs(o.Shell) || strings.ContainsRune(o.Shell, 0)) {
		return fmt.Errorf("--shell %q: want an absolute path inside the session, such as /bin/bash", o.Shell)
	}
	if o.Hostname != "" {
		if err := layers.ValidateName("host", o.Hostname); err != nil {
			return err
		}
	}
	for _, b := range o.Binds {
		if err := b.validate(); err != nil {
			return err
		}
	}
	return nil
}

func (b BindMount) validate() error {
	for _, p := range []string{b.Src, b.Dst} {
		if !path.IsAbs(p) || path.Clean(p) != p || strings.ContainsRune(p, 0) {
			return fmt.Errorf("--bind %s:%s: paths must be absolute and clean", b.Src, b.Dst)
		}
	}
	if b.Dst == "/" {
		return errors.New("--bind: cannot cover the session's whole root")
	}
	if _, err := os.Stat(b.Src); err != nil {
		return fmt.Errorf("--bind: %w", err)
	}
	return nil
}
