package session

import (
	"errors"
	"fmt"
	"os"
	"path"
	"path/filepath"
	"strconv"
	"strings"
	"sync"

	"github.com/incarnate-dev/incarnate/layers"
	"github.com/incarnate-dev/incarnate/sandbox"
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
	// Env are --env entries every process of the session gets (Environ).
	Env []string `json:"env,omitempty"`
	// Memory bounds the session's memory, in bytes (0: no limit); Pids
	// its processes and threads (0: sandbox.DefaultPidsMax).
	Memory int64 `json:"memory,omitempty"`
	Pids   int64 `json:"pids,omitempty"`
	// Nested lets processes inside make namespaces of their own (podman
	// or bwrap inside); by default the seccomp filter refuses them.
	Nested bool `json:"nested,omitempty"`
}

// BindMount is one --bind SRC:DST[:ro|:cow].
type BindMount struct {
	Src      string `json:"src"`
	Dst      string `json:"dst"`
	ReadOnly bool   `json:"ro,omitempty"`
	// Cow shows Src at Dst copy-on-write: writes land in the session's
	// upper dir, Src is never written, and apply writes them back there.
	Cow bool `json:"cow,omitempty"`
}

// ParseBind reads SRC:DST[:ro|:rw|:cow]; both paths must be absolute.
func ParseBind(s string) (BindMount, error) {
	parts := strings.Split(s, ":")
	b := BindMount{}
	switch {
	case len(parts) == 2:
	case len(parts) == 3 && (parts[2] == "ro" || parts[2] == "rw" || parts[2] == "cow"):
		b.ReadOnly, b.Cow = parts[2] == "ro", parts[2] == "cow"
	default:
		return b, fmt.Errorf("--bind %q: want SRC:DST, SRC:DST:ro or SRC:DST:cow, with absolute paths and no ':' in them", s)
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
	for _, e := range o.Env {
		if err := ValidateEnv(e); err != nil {
			return err
		}
	}
	if o.Memory < 0 || (o.Memory > 0 && o.Memory < 4<<20) {
		return fmt.Errorf("--memory %d: want at least 4M", o.Memory)
	}
	if o.Pids != 0 && !pidsInRange(o.Pids) {
		return fmt.Errorf("--pids %d: %w", o.Pids, errPidsRange)
	}
	return nil
}

// The range --pids takes: the sandbox itself needs a few processes, and
// the kernel counts no further than PID_MAX_LIMIT.
const (
	MinPids = 16
	MaxPids = 4 << 20
)

// ParsePids reads --pids (the flag package names it in its error). 0 is refused rather than taken for "no limit"
// or the default: either would be a surprise from a sandbox, and the
// default is what leaving the flag out gives.
func ParsePids(v string) (int64, error) {
	n, err := strconv.ParseInt(v, 10, 64)
	if err != nil || !pidsInRange(n) {
		return 0, errPidsRange
	}
	return n, nil
}

func pidsInRange(n int64) bool { return n >= MinPids && n <= MaxPids }

var errPidsRange = fmt.Errorf("want a number from %d to %d (leave --pids out for the default, %d)", MinPids, MaxPids, sandbox.DefaultPidsMax)

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

// sandboxMounts are the targets the sandbox mounts itself: a bind on or
// below one would hide or replace what the session needs there.
var sandboxMounts = []string{"/proc", "/dev", "/sys"}

// resolveBinds replaces each source by the path it resolves to now: the
// keeper binds that, refusing a symlink met on the way (Bind.Resolved).
func resolveBinds(binds []BindMount) error {
	for i := range binds {
		src, err := filepath.EvalSymlinks(binds[i].Src)
		if err != nil {
			return fmt.Errorf("--bind: %w", err)
		}
		binds[i].Src = src
	}
	return nil
}

// checkBinds refuses binds that would hand a session the store or the
// runtime dir (other sessions' files, the keepers' sockets), or cover
// what the sandbox mounts itself. Paths are compared as resolved, so a
// symlink to the store is the store.
func (s *Store) checkBinds(binds []BindMount) error {
	guarded := []string{s.Root}
	if sock, err := s.socketPath("x"); err == nil {
		guarded = append(guarded, filepath.Dir(sock))
	}
	for _, b := range binds {
		for _, m := range sandboxMounts {
			if within(b.Dst, m) {
				return fmt.Errorf("--bind %s:%s: %s is the sandbox's own; pick another target", b.Src, b.Dst, m)
			}
		}
		src, err := filepath.EvalSymlinks(b.Src)
		if err != nil {
			return fmt.Errorf("--bind: %w", err)
		}
		for _, g := range guarded {
			if real, err := filepath.EvalSymlinks(g); err == nil {
				g = real
			}
			if within(src, g) || within(g, src) {
				return fmt.Errorf("--bind %s: it is or holds %s, incarnate's own, which no session may reach", b.Src, g)
			}
		}
	}
	return nil
}

// within reports whether p is dir or lies below it.
func within(p, dir string) bool {
	return p == dir || dir == "/" || strings.HasPrefix(p, strings.TrimSuffix(dir, "/")+"/")
}

// Summary says in a few words how session o's sandbox differs from the
// default (no memory limit, sandbox.DefaultPidsMax, no nesting), or "-".
func (o *Options) Summary() string {
	var parts []string
	if o.Net == "none" {
		parts = append(parts, "net none")
	}
	if n := len(o.Binds); n > 0 {
		parts = append(parts, fmt.Sprintf("%d bind%s", n, map[bool]string{true: "", false: "s"}[n == 1]))
	}
	if o.Memory > 0 {
		parts = append(parts, "mem "+sandbox.FormatSize(o.Memory))
	}
	if o.Pids > 0 {
		parts = append(parts, fmt.Sprintf("pids %d", o.Pids))
	}
	if o.Nested {
		parts = append(parts, "nested")
	}
	if len(parts) == 0 {
		return "-"
	}
	return strings.Join(parts, " ")
}

// Limits says what holds session o's processes: its pids limit (the
// default unless set), memory limit and nesting.
// CgroupsEnforced is whether sessions get a cgroup of their own here,
// which their limits need (`doctor` says why not). Asked once: the
// interface shows the limits in every frame.
var CgroupsEnforced = sync.OnceValue(func() bool {
	_, err := sandbox.CgroupSupport()
	return err == nil
})

func (o *Options) Limits() string {
	pids := o.Pids
	if pids == 0 {
		pids = sandbox.DefaultPidsMax
	}
	s := fmt.Sprintf("pids %d", pids)
	if o.Memory > 0 {
		s += " mem " + sandbox.FormatSize(o.Memory)
	}
	if o.Nested {
		s += " nested"
	}
	return s
}
