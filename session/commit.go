package session

import (
	"errors"
	"fmt"
	"io"
	"maps"
	"os"
	"path"
	"slices"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"

	"github.com/incarnate-dev/incarnate/internal/faults"
	"github.com/incarnate-dev/incarnate/internal/fsutil"
	"github.com/incarnate-dev/incarnate/layers"
	"github.com/incarnate-dev/incarnate/sandbox"
)

// commitSource is how a committed base records where it came from.
const commitSource = "session:"

// Commit freezes session name's upper dir into a new immutable layer and
// records base newBase: that layer over the layers of the session's base.
// The upper dir is copied as it is, whiteouts and opaque markers included,
// so overlayfs reads the layer exactly as it read the upper dir. The
// session must not be in use (with force, what runs inside is stopped
// first), and goes on unchanged. progress, when not nil, gets a progress
// line of the copy.
func (s *Store) Commit(name, newBase string, force bool, progress io.Writer) (*layers.Base, error) {
	m, err := s.Get(name)
	if err != nil {
		return nil, err
	}
	if err := s.checkNewBase(newBase); err != nil {
		return nil, err
	}
	if sandbox.Rootless() != m.UserXattr {
		return nil, fmt.Errorf("session %q was made %s and can only be committed that way", name, privilegeWord(m.UserXattr))
	}
	base, err := s.Layers.Get(m.Base)
	if err != nil {
		return nil, err
	}
	if err := checkMarkers(base, m.UserXattr); err != nil {
		return nil, err
	}
	// Copying an upper dir that a mounted overlay writes to would freeze
	// a torn state (and overlayfs forbids changing it under a mount).
	lk, err := s.claim(name, force, ", to be committed")
	if err != nil {
		return nil, err
	}
	defer lk.release()
	id, err := s.Layers.NewLayer(func(dst string) error { return s.freeze(m, dst, progress) })
	if err != nil {
		return nil, err
	}
	// Checked again: another commit may have taken the name meanwhile.
	if err := s.checkNewBase(newBase); err != nil {
		return nil, errors.Join(err, fsutil.RemoveTree(s.Layers.LayerDir(id)))
	}
	b, err := s.Layers.AddBase(newBase, append([]string{id}, base.LayerIDs()...), commitSource+name)
	if err != nil {
		return nil, errors.Join(err, fsutil.RemoveTree(s.Layers.LayerDir(id)))
	}
	return b, nil
}

// checkNewBase refuses a bad or taken name before anything is copied.
func (s *Store) checkNewBase(name string) error {
	if err := layers.ValidateName("base", name); err != nil {
		return err
	}
	_, err := s.Layers.Get(name)
	if err == nil {
		return fmt.Errorf("base %q: %w", name, layers.ErrExist)
	}
	if !errors.Is(err, layers.ErrNotExist) {
		return err
	}
	return nil
}

// freeze copies session name's upper dir to dst (under tmp/) and makes it
// durable before the layer is published: a base is meant to outlive the
// session, so a power cut must not leave it with empty files.
func (s *Store) freeze(m *Meta, dst string, progress io.Writer) error {
	if err := s.copyUpper(m.Name, dst, "copying "+m.Name, progress); err != nil {
		return err
	}
	dropMountPoints(dst, mountPoints(m))
	if !hasEntries(dst) {
		// Found by the copy itself rather than a walk of its own first.
		return fmt.Errorf("session %q has no changes to commit: it is base %s as it is", m.Name, m.Base)
	}
	if err := syncFS(dst); err != nil {
		return err
	}
	faults.Point("commit-copied")
	return nil
}

// dropMountPoints removes from a layer being made what the sandbox made
// only to mount on (see mountPoints): empty, and marked so.
func dropMountPoints(layer string, points map[string]bool) {
	paths := slices.Collect(maps.Keys(points))
	slices.SortFunc(paths, func(a, b string) int { return len(b) - len(a) }) // deepest first
	for _, p := range paths {
		dropMountPoint(layer, p)
	}
}

// dropMountPoint removes p from layer if it is an empty mount point,
// resolving it beneath the layer with no symlink followed: the session
// made the layer's content, symlinks to host directories included.
func dropMountPoint(layer, p string) {
	how := &unix.OpenHow{Flags: unix.O_PATH | unix.O_DIRECTORY | unix.O_CLOEXEC, Resolve: unix.RESOLVE_BENEATH | unix.RESOLVE_NO_SYMLINKS}
	root, err := unix.Open(layer, unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return
	}
	defer unix.Close(root)
	parent := root
	if dir := strings.Trim(path.Dir(p), "/"); dir != "" {
		if parent, err = unix.Openat2(root, dir, how); err != nil {
			return
		}
		defer unix.Close(parent)
	}
	name := path.Base(p)
	fd, err := unix.Openat(parent, name, unix.O_PATH|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
	if err != nil {
		return
	}
	defer unix.Close(fd)
	var st unix.Stat_t
	if unix.Fstat(fd, &st) != nil {
		return
	}
	isDir := st.Mode&unix.S_IFMT == unix.S_IFDIR
	if (!isDir && st.Mode&unix.S_IFMT != unix.S_IFREG) || (!isDir && st.Size != 0) {
		return
	}
	if _, err := unix.Getxattr("/proc/self/fd/"+strconv.Itoa(fd), sandbox.MountpointXattr, nil); err != nil {
		return
	}
	flag := 0
	if isDir {
		flag = unix.AT_REMOVEDIR // fails if there is more in it, which stays
	}
	_ = unix.Unlinkat(parent, name, flag)
}

func syncFS(dir string) error {
	f, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer f.Close()
	if err := unix.Syncfs(int(f.Fd())); err != nil {
		return &os.PathError{Op: "syncfs", Path: dir, Err: err}
	}
	return nil
}

// checkMarkers refuses base b to a session of the other kind when b holds
// committed layers. Their whiteouts and opaque dirs are overlay xattrs of
// the committing session's kind: trusted.overlay.* from root,
// user.overlay.* from an ordinary user (userxattr), and a mount of the
// other kind ignores them: the layer's opaque dirs would show again what
// they hid (its 0/0 whiteout devices work for both). Pulled bases hold
// them the same way; imported bases hold none and are not concerned. Create should refuse such a base
// too; until it does, Diff, Export and Commit do.
func checkMarkers(b *layers.Base, userxattr bool) error {
	if !b.HasMarkers() || b.Rootless == userxattr {
		return nil
	}
	w, how := privilegeWord(b.Rootless), "committed from a session made"
	if len(b.Origins) > 0 {
		how = "pulled"
	}
	return fmt.Errorf("base %q was %s %s: its deletions are overlay markers that only sessions made %s see", b.Name, how, w, w)
}
