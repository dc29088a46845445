package layers

import (
	"errors"
	"fmt"
	"io/fs"
	"math/rand/v2"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"incarnate/internal/fsutil"
)

// HostBase is the name of the built-in base: the machine's own "/".
const HostBase = "host"

// Base is a read-only root filesystem made of layers.
type Base struct {
	Name string `json:"name"`
	// Layers are layer ids, top first, as overlayfs wants its lowerdirs.
	Layers  []string  `json:"layers"`
	Source  string    `json:"source,omitempty"`
	Created time.Time `json:"created"`
	// Rootless is set when an ordinary user imported the base, whose
	// files are then owned by that user instead of by their real owners.
	Rootless bool `json:"rootless,omitempty"`
}

// Builtin reports whether b is the host base.
func (b *Base) Builtin() bool { return b.Name == HostBase }

// Store is the layer and base half of the on-disk store.
type Store struct {
	Root string
}

// Open makes sure the store's directories exist.
func Open(root string) (*Store, error) {
	for _, d := range []string{"bases", "layers", "tmp"} {
		if err := os.MkdirAll(filepath.Join(root, d), 0o700); err != nil {
			return nil, err
		}
	}
	return &Store{Root: root}, nil
}

func (s *Store) basePath(name string) string { return filepath.Join(s.Root, "bases", name+".json") }

// LayerDir is where layer id's tree lives.
func (s *Store) LayerDir(id string) string { return filepath.Join(s.Root, "layers", id) }

// HostLayer stands in a base's layer list for the host's own "/": a
// session committed on the host base makes a base of its new layer over
// HostLayer.
const HostLayer = "host"

// LowerDirs are the overlay lower dirs of b, top first.
func (s *Store) LowerDirs(b *Base) []string {
	if b.Builtin() {
		return []string{"/"}
	}
	dirs := make([]string, len(b.Layers))
	for i, id := range b.Layers {
		dirs[i] = s.LayerDir(id)
		if id == HostLayer {
			dirs[i] = "/"
		}
	}
	return dirs
}

// LayerIDs are b's layers, top first, the host base's included.
func (b *Base) LayerIDs() []string {
	if b.Builtin() {
		return []string{HostLayer}
	}
	return b.Layers
}

// Get returns the base called name.
func (s *Store) Get(name string) (*Base, error) {
	if name == HostBase {
		return &Base{Name: HostBase, Source: "/"}, nil
	}
	if err := ValidateName("base", name); err != nil {
		return nil, err
	}
	var b Base
	if err := fsutil.ReadJSON(s.basePath(name), &b); err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return nil, fmt.Errorf("base %q: %w (see `incarnate base ls`)", name, ErrNotExist)
		}
		return nil, err
	}
	return &b, nil
}

// List returns every base, host first, then by name.
func (s *Store) List() ([]*Base, error) {
	ents, err := os.ReadDir(filepath.Join(s.Root, "bases"))
	if err != nil {
		return nil, err
	}
	out := []*Base{{Name: HostBase, Source: "/"}}
	for _, e := range ents {
		name, ok := strings.CutSuffix(e.Name(), ".json")
		if !ok || strings.HasPrefix(name, ".") {
			continue
		}
		b, err := s.Get(name)
		if err != nil {
			return nil, err
		}
		out = append(out, b)
	}
	sort.Slice(out[1:], func(i, j int) bool { return out[1+i].Name < out[1+j].Name })
	return out, nil
}

// ImportDir makes base name from a copy of the directory src. The copy is
// made under tmp/ and renamed into place, so a crash never leaves a
// half-copied layer under layers/.
func (s *Store) ImportDir(name, src string) (*Base, error) {
	if err := ValidateName("base", name); err != nil {
		return nil, err
	}
	if name == HostBase {
		return nil, fmt.Errorf("base %q is built in: %w", name, ErrExist)
	}
	if _, err := os.Stat(s.basePath(name)); err == nil {
		return nil, fmt.Errorf("base %q: %w", name, ErrExist)
	}
	fi, err := os.Stat(src)
	if err != nil {
		return nil, err
	}
	if !fi.IsDir() {
		return nil, fmt.Errorf("import %q: not a directory", src)
	}
	id, err := s.NewLayer(func(dst string) error { return fsutil.CopyTree(src, dst) })
	if err != nil {
		return nil, err
	}
	abs, _ := filepath.Abs(src)
	return s.AddBase(name, []string{id}, abs)
}

// AddBase records base name, made of the given layers (top first).
func (s *Store) AddBase(name string, layerIDs []string, source string) (*Base, error) {
	if err := ValidateName("base", name); err != nil {
		return nil, err
	}
	b := &Base{Name: name, Layers: layerIDs, Source: source, Created: time.Now().UTC(), Rootless: os.Geteuid() != 0}
	if err := fsutil.WriteJSON(s.basePath(name), b); err != nil {
		return nil, err
	}
	return b, nil
}

// NewLayer fills a fresh directory through fill and publishes it as a new
// immutable layer, returning its id. The directory is filled under tmp/
// and renamed into layers/ only when complete.
func (s *Store) NewLayer(fill func(dst string) error) (string, error) {
	ws, err := fsutil.NewWorkspace(filepath.Join(s.Root, "tmp"), "layer-")
	if err != nil {
		return "", err
	}
	defer ws.Discard()
	id := newID()
	if err := fill(ws.Path("tree")); err != nil {
		return "", err
	}
	if err := os.Rename(ws.Path("tree"), s.LayerDir(id)); err != nil {
		return "", err
	}
	return id, fsutil.SyncDir(filepath.Join(s.Root, "layers"))
}

// newID names a layer: a timestamp that sorts, then randomness enough to
// keep two imports in one second apart (crypto/rand would cost every
// start of the binary its init).
func newID() string {
	return fmt.Sprintf("%s-%012x", time.Now().UTC().Format("20060102T150405"), rand.Uint64()>>16)
}
