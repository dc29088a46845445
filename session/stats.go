package session

import (
	"errors"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"time"

	"golang.org/x/sys/unix"

	"app/incarnate/internal/fsutil"
	"app/incarnate/sandbox"
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
	lk, lerr := s.lockSettled(m.Name)
	if lerr != nil {
		st.Stale = true // in use: the cached figures, if any, will do
		return st, nil
	}
	defer lk.release()
	st, err = measureUpper(filepath.Join(s.Dir(m.Name), "upper"))
	if err != nil && s.OutsideUserNS && errors.Is(err, fs.ErrPermission) {
		return st, ErrNeedsUserNS // a directory of another id, closed to us out here
	}
	if err != nil {
		return st, err
	}
	return st, fsutil.WriteJSON(s.statsPath(m.Name), st)
}

// invalidateStats drops the cached figures after a change made outside
// an entry (a reset).
func (s *Store) invalidateStats(name string) { _ = os.Remove(s.statsPath(name)) }

// measureUpper walks an upper dir once: disk blocks used and entries.
// It goes from directory fd to directory fd, so a tree deeper than
// PATH_MAX is measured too.
func measureUpper(upper string) (Stats, error) {
	st := Stats{Taken: time.Now()}
	m := &measurer{st: &st, inSubIDs: sandbox.Rootless() && os.Geteuid() == 0}
	fd, err := unix.Open(upper, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
	if err != nil {
		return st, &os.PathError{Op: "open", Path: upper, Err: err}
	}
	var root unix.Stat_t
	if err := unix.Fstat(fd, &root); err != nil {
		unix.Close(fd)
		return st, &os.PathError{Op: "fstat", Path: upper, Err: err}
	}
	st.Size += root.Blocks * 512
	return st, m.dir(os.NewFile(uintptr(fd), upper))
}

type measurer struct {
	st       *Stats
	inSubIDs bool
}

// dir counts what directory f holds, and closes it.
func (m *measurer) dir(f *os.File) error {
	defer f.Close()
	fd := int(f.Fd())
	for {
		names, err := f.Readdirnames(1024)
		for _, n := range names {
			if err := m.entry(fd, n, f.Name()); err != nil {
				return err
			}
		}
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return &os.PathError{Op: "readdir", Path: f.Name(), Err: err}
		}
	}
}

func (m *measurer) entry(dirfd int, name, dir string) error {
	var st unix.Stat_t
	if err := unix.Fstatat(dirfd, name, &st, unix.AT_SYMLINK_NOFOLLOW); err != nil {
		return &os.PathError{Op: "lstat", Path: dir + "/" + name, Err: err}
	}
	m.st.Size += st.Blocks * 512
	isDir := st.Mode&unix.S_IFMT == unix.S_IFDIR
	m.st.UserNS = m.st.UserNS || m.inSubIDs && isDir && !openToCaller(&st)
	if !madeBySandbox(dirfd, name) {
		m.st.Changes++
	}
	if !isDir {
		return nil
	}
	fd, err := unix.Openat(dirfd, name, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
	if err != nil {
		return &os.PathError{Op: "open", Path: shortName(dir, name), Err: err}
	}
	return m.dir(os.NewFile(uintptr(fd), shortName(dir, name)))
}

// shortName is dir/name for messages, kept short in a deep tree.
func shortName(dir, name string) string {
	p := dir + "/" + name
	if len(p) <= 512 {
		return p
	}
	return p[:200] + "…" + p[len(p)-200:]
}

// madeBySandbox reports whether upper entry p is incarnate's or
// fuse-overlayfs's own, not the session's: a mount point, a stub (see
// makeStubs) or an opaque marker file. (A session that puts the marks on
// files of its own only leaves them out of its own count.)
func madeBySandbox(dirfd int, name string) bool {
	if name == opaqueWhiteout {
		return true
	}
	var buf [8]byte
	p := "/proc/self/fd/" + strconv.Itoa(dirfd) + "/" + name
	for _, x := range []string{stubXattr, sandbox.MountpointXattr} {
		if _, err := unix.Lgetxattr(p, x, buf[:]); err == nil {
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
