package layers

import (
	"errors"
	"fmt"
	"io/fs"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"sync"
	"time"

	"golang.org/x/sys/unix"

	"github.com/incarnate-dev/incarnate/internal/fsutil"
	"github.com/incarnate-dev/incarnate/sandbox"
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
	// LayerSizes are the bytes each layer takes on disk, measured once
	// when the base is recorded (layers never change), so that listing
	// bases walks no trees.
	LayerSizes map[string]int64 `json:"layer_sizes,omitempty"`
	// Origins are where layers pulled from a registry came from, by
	// layer id: a push sends those again as they were, without a new
	// tarball (and mounts them across repositories where it can).
	Origins map[string]LayerOrigin `json:"origins,omitempty"`
}

// LayerOrigin is a layer's blob in a registry.
type LayerOrigin struct {
	Repo      string `json:"repo"` // registry/repository it was pulled from
	Digest    string `json:"digest"`
	DiffID    string `json:"diff_id"`
	MediaType string `json:"media_type"`
	Size      int64  `json:"size"`
}

// HasMarkers reports whether b's layers hold overlay's own markers
// (opaque directories, xattr whiteouts) of the kind of user who made
// them: a committed or a pulled base's do; a flattened import's do not.
func (b *Base) HasMarkers() bool {
	return strings.HasPrefix(b.Source, "session:") || len(b.Origins) > 0
}

// Size is what b's layers take on disk; shared layers count in full.
// ok is false when a size is not recorded (a base from an older store).
func (b *Base) Size() (n int64, ok bool) {
	for _, id := range b.Layers {
		size, found := b.LayerSizes[id]
		if !found && id != HostLayer {
			return n, false
		}
		n += size
	}
	return n, true
}

// Builtin reports whether b is the host base.
func (b *Base) Builtin() bool { return b.Name == HostBase }

// Store is the layer and base half of the on-disk store.
type Store struct {
	Root string

	mu sync.Mutex
	// pending holds a lock on each layer made by NewLayer until AddBase
	// names it: a layer no base names and no one holds is debris of a
	// crash between the two, and SweepOrphans deletes it.
	pending map[string]*os.File
}

// Open makes sure the store's directories exist.
func Open(root string) (*Store, error) {
	if err := os.MkdirAll(root, 0o700); err != nil {
		return nil, err
	}
	if err := OwnedDirs(root, "bases", "layers", "tmp"); err != nil {
		return nil, err
	}
	return &Store{Root: root}, nil
}

// OwnedDirs makes the store's directories under root that are missing and
// checks root and each of them with fsutil.OwnedDir: a store someone else
// can write is not used. root itself may be reached through a symlink of
// the caller's choosing; what is inside may not.
func OwnedDirs(root string, dirs ...string) error {
	real, err := filepath.EvalSymlinks(root)
	if err != nil {
		return err
	}
	if err := fsutil.OwnedDir(real); err != nil {
		return fmt.Errorf("store %s: %w", root, err)
	}
	for _, d := range dirs {
		p := filepath.Join(root, d)
		if err := os.Mkdir(p, 0o700); err != nil && !errors.Is(err, os.ErrExist) {
			return err
		}
		if err := fsutil.OwnedDir(p); err != nil {
			return fmt.Errorf("store %s: %w", root, err)
		}
		// Closed to everyone else, not only to their writes: a root
		// session's upper dir holds set-uid-root files and file
		// capabilities that work on the host for whoever can reach them.
		if fi, err := os.Lstat(p); err == nil && fi.Mode().Perm()&0o077 != 0 {
			if err := os.Chmod(p, 0o700); err != nil {
				return fmt.Errorf("store %s: %w", root, err)
			}
		}
	}
	return nil
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
// BaseNames lists the bases of the store at root by their records alone,
// host first: for shell completion, which must not open the store.
func BaseNames(root string) []string {
	return append([]string{HostBase}, fsutil.Names(filepath.Join(root, "bases"), ".json")...)
}

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

// AddBase records base name, made of the given layers (top first). The
// name must be free: two imports racing for it cannot both win. The
// size of each layer is recorded with it (from another base that has
// it, else measured now).
func (s *Store) AddBase(name string, layerIDs []string, source string) (*Base, error) {
	return s.addBase(&Base{Name: name, Layers: layerIDs, Source: source})
}

// addBase is AddBase of b, whose name, layers, source and origins are
// set.
func (s *Store) addBase(b *Base) (*Base, error) {
	name := b.Name
	defer s.release(b.Layers)
	if err := ValidateName("base", name); err != nil {
		return nil, err
	}
	sizes, err := s.layerSizes(b.Layers)
	if err != nil {
		return nil, err
	}
	b.Created, b.Rootless, b.LayerSizes = time.Now().UTC(), sandbox.Rootless(), sizes
	if err := s.writeNew(s.basePath(name), b); err != nil {
		if errors.Is(err, fs.ErrExist) {
			return nil, fmt.Errorf("base %q: %w", name, ErrExist)
		}
		return nil, err
	}
	return b, nil
}

// writeNew writes v to path atomically, and only if path does not exist:
// the file is written whole in tmp/, then hard-linked into place, which
// fails rather than replaces.
func (s *Store) writeNew(path string, v any) error {
	tmp := filepath.Join(s.Root, "tmp", "new-"+filepath.Base(path)+"-"+newID())
	if err := fsutil.WriteJSON(tmp, v); err != nil {
		return err
	}
	defer os.Remove(tmp)
	if err := os.Link(tmp, path); err != nil {
		return err
	}
	return fsutil.SyncDir(filepath.Dir(path))
}

// layerSizes finds or measures the size of each layer.
func (s *Store) layerSizes(ids []string) (map[string]int64, error) {
	sizes := map[string]int64{}
	known := map[string]int64{}
	if all, err := s.List(); err == nil {
		for _, b := range all {
			for id, n := range b.LayerSizes {
				known[id] = n
			}
		}
	}
	for _, id := range ids {
		if id == HostLayer {
			continue
		}
		n, ok := known[id]
		if !ok {
			var err error
			if n, err = diskUsage(s.LayerDir(id)); err != nil {
				return nil, err
			}
		}
		sizes[id] = n
	}
	return sizes, nil
}

// NewLayer fills a fresh directory through fill and publishes it as a new
// immutable layer, returning its id. The directory is filled under tmp/
// and renamed into layers/ only when complete.
func (s *Store) NewLayer(fill func(dst string) error) (string, error) {
	return s.newLayerAs(newID(), fill)
}

// newLayerAs is NewLayer with the id given. A layer of that id already
// there (another pull published the same content first) is kept, and
// this one's copy dropped.
func (s *Store) newLayerAs(id string, fill func(dst string) error) (string, error) {
	ws, err := fsutil.NewWorkspace(filepath.Join(s.Root, "tmp"), "layer-")
	if err != nil {
		return "", err
	}
	defer ws.Discard()
	if err := fill(ws.Path("tree")); err != nil {
		return "", err
	}
	// Locked before the rename, so it is never under layers/ unnamed
	// and unheld.
	lock, err := lockDir(ws.Path("tree"), true)
	if err != nil {
		return "", err
	}
	if err := os.Rename(ws.Path("tree"), s.LayerDir(id)); err != nil {
		lock.Close()
		if errors.Is(err, unix.EEXIST) || errors.Is(err, unix.ENOTEMPTY) {
			if s.reuseLayer(id) {
				return id, nil
			}
		}
		return "", err
	}
	s.hold(id, lock)
	return id, fsutil.SyncDir(filepath.Join(s.Root, "layers"))
}

// reuseLayer takes layer id, when it is there, for a base about to be
// recorded: it holds the layer's lock until AddBase, so neither a
// removal of the base that has it nor SweepOrphans deletes it meanwhile.
// A layer being deleted as the lock was taken is not taken.
func (s *Store) reuseLayer(id string) bool {
	lock, err := lockDir(s.LayerDir(id), true)
	if err != nil {
		return false
	}
	var held, now unix.Stat_t
	if unix.Fstat(int(lock.Fd()), &held) != nil || unix.Stat(s.LayerDir(id), &now) != nil || held.Ino != now.Ino || held.Dev != now.Dev {
		lock.Close() // renamed away to be deleted while we waited
		return false
	}
	s.hold(id, lock)
	return true
}

func (s *Store) hold(id string, lock *os.File) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.pending == nil {
		s.pending = map[string]*os.File{}
	}
	s.pending[id] = lock
}

// release drops the locks NewLayer took on ids.
func (s *Store) release(ids []string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, id := range ids {
		if f := s.pending[id]; f != nil {
			f.Close()
			delete(s.pending, id)
		}
	}
}

// lockDir opens dir and takes an exclusive flock on it; without wait it
// fails at once if someone holds it. The kernel drops the lock when the
// holder dies.
func lockDir(dir string, wait bool) (*os.File, error) {
	f, err := os.Open(dir)
	if err != nil {
		return nil, err
	}
	how := unix.LOCK_EX
	if !wait {
		how |= unix.LOCK_NB
	}
	if err := unix.Flock(int(f.Fd()), how); err != nil {
		f.Close()
		return nil, &os.PathError{Op: "flock", Path: dir, Err: err}
	}
	return f, nil
}

// newID names a layer: a timestamp that sorts, then randomness enough to
// keep two imports in one second apart (crypto/rand would cost every
// start of the binary its init).
func newID() string {
	return fmt.Sprintf("%s-%012x", time.Now().UTC().Format("20060102T150405"), rand.Uint64()>>16)
}

// RemoveBase deletes base name: its file first, in one unlink, so it is
// gone from every listing at once, then each of its layers that no other
// base names. It refuses while another base is built on this one. It
// does not know about sessions: session.Store.RemoveBase checks that none
// stands on the base before calling it. It returns the bytes freed.
func (s *Store) RemoveBase(name string) (int64, error) {
	s.SweepOrphans()
	b, all, err := s.removable(name)
	if err != nil {
		return 0, err
	}
	if err := os.Remove(s.basePath(name)); err != nil {
		return 0, err
	}
	if err := fsutil.SyncDir(filepath.Join(s.Root, "bases")); err != nil {
		return 0, err
	}
	var freed int64
	for _, id := range unshared(b, all) {
		// A layer a pull is about to name again is held (reuseLayer):
		// it stays, for that base, or for SweepOrphans if the pull fails.
		lock, err := lockDir(s.LayerDir(id), false)
		if err != nil {
			continue
		}
		err = s.dropLayer(id)
		lock.Close()
		if err != nil {
			return freed, err
		}
		freed += b.LayerSizes[id]
	}
	return freed, nil
}

// CheckRemove says why base name cannot be removed, or nil: asked before
// the user is asked to confirm, so a refusal comes first.
func (s *Store) CheckRemove(name string) error {
	_, _, err := s.removable(name)
	return err
}

// removable is base name and every base, or why name cannot be removed:
// it is built in, or another base is built on it.
func (s *Store) removable(name string) (*Base, []*Base, error) {
	b, err := s.Get(name)
	if err != nil {
		return nil, nil, err
	}
	if b.Builtin() {
		return nil, nil, fmt.Errorf("base %q is %w: it is this machine's own /, which cannot be removed", name, ErrBuiltin)
	}
	all, err := s.List()
	if err != nil {
		return nil, nil, err
	}
	if on := builtOn(b, all); len(on) > 0 {
		what, them := "base %s is", "it"
		if len(on) > 1 {
			what, them = "bases %s are", "them"
		}
		return nil, nil, fmt.Errorf("base %q is %w: "+what+" built on it; remove %s first: incarnate base rm %s",
			name, ErrInUse, strings.Join(on, ", "), them, strings.Join(on, " "))
	}
	return b, all, nil
}

// builtOn names the other bases that stack on b: those that have b's top
// layer among theirs without being b's exact copy.
func builtOn(b *Base, all []*Base) []string {
	var on []string
	for _, o := range all {
		if o.Name != b.Name && !o.Builtin() && len(b.Layers) > 0 &&
			slices.Contains(o.Layers, b.Layers[0]) && !slices.Equal(o.Layers, b.Layers) {
			on = append(on, o.Name)
		}
	}
	return on
}

// unshared lists b's layers that no other base names.
func unshared(b *Base, all []*Base) []string {
	var ids []string
	for _, id := range b.Layers {
		used := id == HostLayer
		for _, o := range all {
			used = used || o.Name != b.Name && slices.Contains(o.Layers, id)
		}
		if !used {
			ids = append(ids, id)
		}
	}
	return ids
}

// dropLayer deletes layer id. It is first renamed into a workspace in
// tmp/, in one step, so a crash half-way through the deletion leaves
// debris the start-up clean-up removes, never half a layer in layers/.
func (s *Store) dropLayer(id string) error {
	if !validLayerID(id) {
		// A hand-edited base file must not point a delete anywhere.
		return fmt.Errorf("layer %q: %w", id, ErrInvalidName)
	}
	ws, err := fsutil.NewWorkspace(filepath.Join(s.Root, "tmp"), "drop-layer-")
	if err != nil {
		return err
	}
	if err := os.Rename(s.LayerDir(id), ws.Path("layer")); err != nil && !errors.Is(err, fs.ErrNotExist) {
		ws.Discard()
		return err
	}
	return ws.Discard()
}

func validLayerID(id string) bool {
	return id != HostLayer && len(id) <= MaxNameLen && len(id) > 0 && nameChars(id)
}

// namedLayers are the layers some base names, or nil when the bases
// cannot be read.
func (s *Store) namedLayers() map[string]bool {
	all, err := s.List()
	if err != nil {
		return nil
	}
	ids := map[string]bool{}
	for _, b := range all {
		for _, id := range b.Layers {
			ids[id] = true
		}
	}
	return ids
}

// pulledKeep is how long a pulled layer no base names is kept: a pull
// cut short is taken up by its rerun without fetching it again.
const pulledKeep = 24 * time.Hour

// resumable reports whether layer id is one a pull left lately.
func (s *Store) resumable(id string) bool {
	var st unix.Stat_t
	return strings.HasPrefix(id, pulledPrefix) && unix.Lstat(s.LayerDir(id), &st) == nil &&
		time.Since(time.Unix(st.Ctim.Unix())) < pulledKeep
}

// HasOrphans reports whether a layer no base names is there, for
// SweepOrphans to look at (the layer of an import still running counts).
func (s *Store) HasOrphans() bool {
	ents, err := os.ReadDir(filepath.Join(s.Root, "layers"))
	if err != nil || len(ents) == 0 {
		return false
	}
	named := s.namedLayers()
	for _, e := range ents {
		if id := e.Name(); !named[id] && validLayerID(id) && !s.resumable(id) {
			return true
		}
	}
	return false
}

// SweepOrphans deletes the layers no base names and no running import
// or commit holds: what a crash between NewLayer and AddBase left.
// Imports and removals call it; so may a start-up clean-up. The bases
// are read again once the locks are held, so a layer whose base was
// recorded meanwhile is kept.
func (s *Store) SweepOrphans() {
	ents, err := os.ReadDir(filepath.Join(s.Root, "layers"))
	if err != nil || len(ents) == 0 {
		return
	}
	before := s.namedLayers()
	if before == nil {
		return
	}
	var locked []*os.File
	defer func() {
		for _, f := range locked {
			f.Close()
		}
	}()
	var orphans []string
	for _, e := range ents {
		if id := e.Name(); !before[id] && validLayerID(id) && !s.resumable(id) {
			if f, err := lockDir(s.LayerDir(id), false); err == nil {
				locked = append(locked, f)
				orphans = append(orphans, id)
			}
		}
	}
	if len(orphans) == 0 {
		return
	}
	after := s.namedLayers()
	for _, id := range orphans {
		if after != nil && !after[id] {
			_ = s.dropLayer(id)
		}
	}
}
