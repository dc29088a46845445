package session

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"time"

	"golang.org/x/sys/unix"

	"github.com/incarnate-dev/incarnate/internal/fsutil"
	"github.com/incarnate-dev/incarnate/layers"
	"github.com/incarnate-dev/incarnate/sandbox"
)

// Stats describe what a session holds: the disk its upper dir takes and
// how many paths it changed. Walking every upper dir on every `ls` would
// not scale to a thousand sessions, so they are cached in stats.json and
// recomputed only when the session was entered after they were taken.
type Stats struct {
	Size    int64     `json:"size"`
	Changes int       `json:"changes"`
	Taken   time.Time `json:"taken"`
	// UserNS: the upper dir held a directory of another id that the user
	// cannot read from outside the sub-id namespace, so the next
	// measuring goes straight there (see Store.OutsideUserNS).
	UserNS bool `json:"userns,omitempty"`
	// Stale is set when the session runs and the figures may be behind.
	Stale bool `json:"-"`
}

func (s *Store) statsPath(name string) string { return filepath.Join(s.Dir(name), "stats.json") }

// Stats returns session name's figures, recomputing them when they are
// missing or older than the last entry and nothing runs inside.
func (s *Store) Stats(m *Meta) (Stats, error) {
	var st Stats
	err := fsutil.ReadJSON(s.statsPath(m.Name), &st)
	fresh := err == nil && st.Taken.After(m.LastEntered)
	if fresh {
		return st, nil
	}
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return st, err
	}
	if s.OutsideUserNS && st.UserNS {
		return st, ErrNeedsUserNS // rather than walk until it fails again
	}
	lk, lerr := s.lock(m.Name)
	switch {
	case lerr == nil:
		defer lk.release()
	case s.Shells(m.Name) > 0:
		st.Stale = true // in use: the cached figures, if any, will do
		return st, nil
	}
	// Free, or held by a keeper with nothing to run (lingering, or on its
	// way out): the upper dir holds still either way.
	st, err = measureUpper(filepath.Join(s.Dir(m.Name), "upper"))
	if err != nil && s.OutsideUserNS && errors.Is(err, fs.ErrPermission) {
		return st, ErrNeedsUserNS // a directory of another id, closed to us out here
	}
	if err != nil {
		return st, err
	}
	// The count is what diff lists, so that ls, the interface and the
	// discard question agree with it; the walk's count of entries (copied
	// up parents among them) stands in only where the diff cannot be read.
	if changes, err := s.Diff(m.Name); err == nil {
		st.Changes = len(changes)
	}
	return st, fsutil.WriteJSON(s.statsPath(m.Name), st)
}

// invalidateStats drops the cached figures after a change made outside
// an entry (a reset).
func (s *Store) invalidateStats(name string) { _ = os.Remove(s.statsPath(name)) }

// measureUpper walks an upper dir once: disk blocks used and entries,
// of a tree of any depth.
func measureUpper(upper string) (Stats, error) {
	st := Stats{Taken: time.Now()}
	var root unix.Stat_t
	if err := unix.Lstat(upper, &root); err != nil {
		return st, &os.PathError{Op: "lstat", Path: upper, Err: err}
	}
	st.Size += root.Blocks * 512
	inSubIDs := sandbox.Rootless() && os.Geteuid() == 0
	err := fsutil.Walk(upper, func(dirfd int, name, at string, e *unix.Stat_t) error {
		st.Size += e.Blocks * 512
		st.UserNS = st.UserNS || inSubIDs && e.Mode&unix.S_IFMT == unix.S_IFDIR && !openToCaller(e)
		if !madeBySandbox(name, at) {
			st.Changes++
		}
		return nil
	})
	return st, err
}

// madeBySandbox reports whether upper entry p is incarnate's or
// fuse-overlayfs's own, not the session's: a mount point, a stub (see
// makeStubs) or an opaque marker file. (A session that puts the marks on
// files of its own only leaves them out of its own count.)
func madeBySandbox(name, at string) bool {
	if name == layers.OpaqueWhiteout {
		return true
	}
	var buf [8]byte
	for _, x := range []string{stubXattr, sandbox.MountpointXattr} {
		if _, err := unix.Lgetxattr(at, x, buf[:]); err == nil {
			return true
		}
	}
	return false
}

// openToCaller reports whether the user outside the sub-id namespace
// (root and its group in here) may list and enter directory st.
func openToCaller(st *unix.Stat_t) bool {
	switch {
	case st.Uid == 0:
		return st.Mode&0o500 == 0o500
	case st.Gid == 0:
		return st.Mode&0o050 == 0o050
	}
	return st.Mode&0o005 == 0o005
}
