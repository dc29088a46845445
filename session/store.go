package session

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"time"

	"incarnate/internal/fsutil"
	"incarnate/layers"
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
	Options
}

// Store is the session half of the on-disk store.
type Store struct {
	Root   string
	Layers *layers.Store
}

// Open opens (creating if needed) the store at root.
func Open(root string) (*Store, error) {
	ls, err := layers.Open(root)
	if err != nil {
		return nil, err
	}
	for _, d := range []string{"sessions", "trash"} {
		if err := os.MkdirAll(filepath.Join(root, d), 0o700); err != nil {
			return nil, err
		}
	}
	return &Store{Root: root, Layers: ls}, nil
}

// Dir is session name's directory.
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
	b, err := s.Layers.Get(base)
	if err != nil {
		return nil, err
	}
	if b.Builtin() && os.Geteuid() != 0 {
		return nil, layers.ErrHostNeedsRoot
	}
	if _, err := os.Lstat(s.Dir(name)); err == nil {
		return nil, fmt.Errorf("session %q: %w", name, layers.ErrExist)
	}
	tmp, err := os.MkdirTemp(filepath.Join(s.Root, "tmp"), "session-"+name+"-")
	if err != nil {
		return nil, err
	}
	m := &Meta{Name: name, Base: base, Created: time.Now().UTC(), UserXattr: os.Geteuid() != 0, Options: opts}
	if err := populate(tmp, m); err != nil {
		_ = fsutil.RemoveTree(tmp)
		return nil, err
	}
	// rename(2) onto an existing non-empty directory fails, so two
	// creates racing for one name cannot both win.
	if err := os.Rename(tmp, s.Dir(name)); err != nil {
		_ = fsutil.RemoveTree(tmp)
		if errors.Is(err, fs.ErrExist) || errors.Is(err, errNotEmpty) {
			return nil, fmt.Errorf("session %q: %w", name, layers.ErrExist)
		}
		return nil, err
	}
	return m, fsutil.SyncDir(filepath.Join(s.Root, "sessions"))
}

func populate(dir string, m *Meta) error {
	for _, d := range []string{"upper", "work", "root"} {
		if err := os.Mkdir(filepath.Join(dir, d), 0o755); err != nil {
			return err
		}
	}
	return fsutil.WriteJSON(filepath.Join(dir, "session.json"), m)
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
			return nil, err
		}
		out = append(out, m)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out, nil
}

// Remove discards session name: it is renamed into trash/ at once, so it
// is gone from every listing, and then deleted there.
func (s *Store) Remove(name string) error {
	if _, err := s.Get(name); err != nil {
		return err
	}
	lk, err := s.lock(name)
	if err != nil {
		return err
	}
	defer lk.release()
	trash, err := os.MkdirTemp(filepath.Join(s.Root, "trash"), name+"-")
	if err != nil {
		return err
	}
	dst := filepath.Join(trash, "session")
	if err := os.Rename(s.Dir(name), dst); err != nil {
		return err
	}
	return fsutil.RemoveTree(trash)
}
