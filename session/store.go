package session

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"sync"
	"time"

	"github.com/incarnate-dev/incarnate/internal/faults"
	"github.com/incarnate-dev/incarnate/internal/fsutil"
	"github.com/incarnate-dev/incarnate/layers"
	"github.com/incarnate-dev/incarnate/sandbox"
)

// Meta is what session.json records.
type Meta struct {
	Name    string    `json:"name"`
	Base    string    `json:"base"`
	Created time.Time `json:"created"`
	// LastEntered is not stored in the file: it is the mtime of
	// sessions/<name>/entered, touched on every run, so entering needs no
	// fsync'd rewrite of the metadata.
	LastEntered time.Time `json:"-"`
	// UserXattr records how the upper dir was made: inside a user
	// namespace (user.* xattrs) or with real privileges (trusted.*). It
	// must always be mounted the same way.
	UserXattr bool `json:"userxattr,omitempty"`
	// Fuse: the session's root is fuse-overlayfs (an ordinary user's
	// host base), whose upper dir marks opaque directories its own way.
	Fuse bool `json:"fuse,omitempty"`
	// KernelDirs, in a fuse session, are served by the kernel's overlay
	// (with userxattr) instead, from the session's first start on.
	KernelDirs []string `json:"kernel_dirs,omitempty"`
	Options
	// Damaged says why the session's metadata could not be read; such a
	// session is listed so it can be inspected or removed.
	Damaged string `json:"-"`
}

// DefaultLinger is Store.Linger unless the user says otherwise: long
// enough for a script's or an agent's next command, short enough that
// an idle session does not hold its mounts for long.
const DefaultLinger = 30 * time.Second

// Store is the session half of the on-disk store.
type Store struct {
	Root   string
	Layers *layers.Store
	// OutsideUserNS: this process runs outside the user namespace the
	// sessions need (an ordinary user's sub-id namespace, not entered
	// yet). It may join a running keeper and read what is cached, but
	// what needs the namespace (starting a keeper, measuring an upper
	// dir that holds other ids' files) returns ErrNeedsUserNS instead.
	OutsideUserNS bool
	// Linger is how long a keeper stays up once nothing runs in the
	// session: the next command in that time joins it, and a plain
	// `run` then never starts Go (internal/prestage). Anything that
	// needs the session free asks an idle keeper to go first.
	Linger time.Duration
	// ShellConfig, when set, names the config file enter's shell may
	// come from and the shell it gives (an empty path: unknown), for
	// the keeper's ticket.
	ShellConfig func() (path, shell string)

	// The runtime directory, checked once: ls asks it of every session.
	runtimeOnce sync.Once
	runtime     string
	runtimeErr  error
}

// Open opens (creating if needed) the store at root, and repairs what a
// crash left there.
func Open(root string) (*Store, error) {
	s, err := open(root)
	if err == nil {
		s.recover()
	}
	return s, err
}

// OpenOutsideUserNS opens the store from outside the user namespace its
// sessions need (see Store.OutsideUserNS). Repairs cannot be made out
// here (they would fail on other ids' files, and a purge started here
// would outlive its parent's re-execution as a zombie), so when a crash
// left anything to repair it returns ErrNeedsUserNS.
func OpenOutsideUserNS(root string) (*Store, error) {
	s, err := open(root)
	if err != nil {
		return nil, err
	}
	if hasEntries(filepath.Join(root, "tmp")) || hasEntries(filepath.Join(root, "trash")) || s.Layers.HasOrphans() {
		return nil, ErrNeedsUserNS
	}
	s.OutsideUserNS = true
	return s, nil
}

func hasEntries(dir string) bool {
	f, err := os.Open(dir)
	if err != nil {
		return false
	}
	defer f.Close()
	names, _ := f.Readdirnames(1)
	return len(names) > 0
}

func open(root string) (*Store, error) {
	ls, err := layers.Open(root)
	if err != nil {
		return nil, err
	}
	if err := layers.OwnedDirs(root, "sessions", "trash"); err != nil {
		return nil, err
	}
	return &Store{Root: root, Layers: ls, Linger: DefaultLinger}, nil
}

// recover repairs what a crash can leave: workspaces of operations that
// died half-way (a session being created or cloned, a layer being
// imported or committed) are deleted, so are layers no base names, and a
// discard whose deletion did not finish is resumed in the background. Sessions themselves only ever
// appear by a rename of a complete directory, so none is half-made.
func (s *Store) recover() {
	_ = fsutil.CleanStale(filepath.Join(s.Root, "tmp"))
	s.Layers.SweepOrphans() // a layer whose import or commit died before its base was recorded
	if ents, err := os.ReadDir(filepath.Join(s.Root, "trash")); err == nil && len(ents) > 0 {
		s.purgeInBackground()
	}
}

// Dir is session name's directory.
// Names lists the sessions of the store at root by their directories
// alone: for shell completion, which must not open the store.
func Names(root string) []string { return fsutil.Names(filepath.Join(root, "sessions"), "") }

func (s *Store) Dir(name string) string { return filepath.Join(s.Root, "sessions", name) }

func (s *Store) metaPath(name string) string { return filepath.Join(s.Dir(name), "session.json") }

// Get reads session name's metadata.
func (s *Store) Get(name string) (*Meta, error) {
	if err := layers.ValidateName("session", name); err != nil {
		return nil, err
	}
	var m Meta
	if err := fsutil.ReadJSON(s.metaPath(name), &m); err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return nil, fmt.Errorf("session %q: %w (see `incarnate ls`)", name, layers.ErrNotExist)
		}
		return nil, err
	}
	// The directory's name is the session's: a rename that crashed
	// before rewriting the metadata must not leave two names.
	m.Name = name
	if fi, err := os.Stat(s.enteredPath(name)); err == nil {
		m.LastEntered = fi.ModTime()
	}
	return &m, nil
}

func (s *Store) enteredPath(name string) string { return filepath.Join(s.Dir(name), "entered") }

// touchEntered records that the session is being entered now.
func (s *Store) touchEntered(name string) error {
	now := time.Now()
	err := os.Chtimes(s.enteredPath(name), now, now)
	if errors.Is(err, fs.ErrNotExist) {
		return os.WriteFile(s.enteredPath(name), nil, 0o644)
	}
	return err
}

// Create makes an empty session on base.
func (s *Store) Create(name, base string, opts Options) (*Meta, error) {
	if err := layers.ValidateName("session", name); err != nil {
		return nil, err
	}
	if err := opts.Validate(); err != nil {
		return nil, err
	}
	if err := s.checkBinds(opts.Binds); err != nil {
		return nil, err
	}
	if err := resolveBinds(opts.Binds); err != nil {
		return nil, err
	}
	b, err := s.Layers.Get(base)
	if err != nil {
		return nil, err
	}
	fuse := s.needsFuse(b)
	if fuse {
		if _, err := fuseProgram(); err != nil {
			return nil, err
		}
	}
	if _, err := os.Lstat(s.Dir(name)); err == nil {
		return nil, fmt.Errorf("session %q: %w", name, layers.ErrExist)
	}
	m := &Meta{Name: name, Base: base, Created: time.Now().UTC(), UserXattr: sandbox.Rootless(), Fuse: fuse, Options: opts}
	if fuse && sandbox.Rootless() {
		m.KernelDirs = kernelDirs()
	}
	return m, s.publish(m, func(dir string) error {
		return os.Mkdir(filepath.Join(dir, "upper"), 0o755)
	})
}

// publish builds session m's directory in a workspace (fill makes its
// upper dir there), then renames it into sessions/ in one step.
func (s *Store) publish(m *Meta, fill func(dir string) error) error {
	ws, err := fsutil.NewWorkspace(filepath.Join(s.Root, "tmp"), "session-")
	if err != nil {
		return err
	}
	defer ws.Discard()
	dir := ws.Path("session")
	if err := os.Mkdir(dir, 0o700); err != nil {
		return err
	}
	if err := fill(dir); err != nil {
		return err
	}
	for _, d := range []string{"work", "root"} {
		if err := os.Mkdir(filepath.Join(dir, d), 0o755); err != nil {
			return err
		}
	}
	if err := fsutil.WriteJSON(filepath.Join(dir, "session.json"), m); err != nil {
		return err
	}
	faults.Point("session-built")
	// rename(2) onto an existing non-empty directory fails, so two
	// creates racing for one name cannot both win.
	if err := os.Rename(dir, s.Dir(m.Name)); err != nil {
		if errors.Is(err, fs.ErrExist) || errors.Is(err, errNotEmpty) {
			return fmt.Errorf("session %q: %w", m.Name, layers.ErrExist)
		}
		return err
	}
	return fsutil.SyncDir(filepath.Join(s.Root, "sessions"))
}

// List returns every session, by name.
func (s *Store) List() ([]*Meta, error) {
	ents, err := os.ReadDir(filepath.Join(s.Root, "sessions"))
	if err != nil {
		return nil, err
	}
	var out []*Meta
	for _, e := range ents {
		m, err := s.Get(e.Name())
		if err != nil {
			// Shown, not hidden and not fatal: the user decides.
			m = &Meta{Name: e.Name(), Damaged: err.Error()}
		}
		out = append(out, m)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out, nil
}
