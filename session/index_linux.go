package session

import (
	"encoding/json"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"time"

	"golang.org/x/sys/unix"

	"github.com/incarnate-dev/incarnate/internal/fsutil"
)

// Listing a thousand sessions by reading each one's metadata and figures
// costs a dozen system calls a session. index.json caches what `ls` shows,
// keyed by two modification times per session that change whenever what
// is cached could: the session directory's (metadata and figures are
// replaced by renames inside it, a reset renames its upper dir) and its
// entered file's (every entry touches it). Checking both is two fstatat
// calls a session, about what `ls -l` itself spends. The index is only a
// cache: a stale or missing one costs time, never correctness.

// Entry is a session as listed: metadata and figures.
type Entry struct {
	Meta  *Meta `json:"meta"`
	Stats Stats `json:"stats"`
	// The keys the cached values were read under, in nanoseconds.
	DirMtime     int64 `json:"dir_mtime"`
	EnteredMtime int64 `json:"entered_mtime"`
}

type index struct {
	Sessions map[string]*Entry `json:"sessions"`
}

func (s *Store) indexPath() string { return filepath.Join(s.Root, "index.json") }

// ListEntries returns every session with its figures, by name. Damaged
// sessions are listed with Meta.Damaged set.
func (s *Store) ListEntries() ([]*Entry, error) {
	dir := filepath.Join(s.Root, "sessions")
	dirfd, err := unix.Open(dir, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, &os.PathError{Op: "open", Path: dir, Err: err}
	}
	defer unix.Close(dirfd)
	names, err := readNames(dir)
	if err != nil {
		return nil, err
	}
	var idx index
	if fsutil.ReadJSON(s.indexPath(), &idx) != nil || idx.Sessions == nil {
		idx.Sessions = map[string]*Entry{}
	}
	out := make([]*Entry, 0, len(names))
	changed := len(idx.Sessions) != len(names)
	fresh := make(map[string]*Entry, len(names))
	for _, name := range names {
		dm, em := mtimeAt(dirfd, name), mtimeAt(dirfd, name+"/entered")
		e := idx.Sessions[name]
		if e != nil && e.DirMtime == dm && e.EnteredMtime == em && e.Meta != nil {
			if em != 0 {
				e.Meta.LastEntered = time.Unix(0, em)
			}
		} else {
			if e, err = s.readEntry(name); err != nil {
				return nil, err
			}
			// Figures just taken renamed stats.json into the directory:
			// key them by the directory as it is now.
			e.DirMtime, e.EnteredMtime, changed = mtimeAt(dirfd, name), em, true
		}
		if !e.Stats.Stale && e.Meta.Damaged == "" {
			fresh[name] = e // what is not final is read again next time
		}
		out = append(out, e)
	}
	if changed {
		// A cache: no fsync, and a failed write only costs the next ls.
		_ = writeIndex(s.indexPath(), index{Sessions: fresh})
	}
	return out, nil
}

// readEntry reads one session the slow way. Its only error is
// ErrNeedsUserNS: others mark the entry damaged or its figures stale.
func (s *Store) readEntry(name string) (*Entry, error) {
	m, err := s.Get(name)
	if err != nil {
		return &Entry{Meta: &Meta{Name: name, Damaged: err.Error()}, Stats: Stats{Stale: true}}, nil
	}
	st, err := s.Stats(m)
	if errors.Is(err, ErrNeedsUserNS) {
		return nil, err
	}
	if err != nil {
		st.Stale = true
	}
	return &Entry{Meta: m, Stats: st}, nil
}

func readNames(dir string) ([]string, error) {
	f, err := os.Open(dir)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	names, err := f.Readdirnames(-1)
	if err != nil {
		return nil, err
	}
	sort.Strings(names)
	return names, nil
}

// mtimeAt is the modification time of name in dirfd, 0 when absent.
func mtimeAt(dirfd int, name string) int64 {
	var st unix.Stat_t
	if err := unix.Fstatat(dirfd, name, &st, unix.AT_SYMLINK_NOFOLLOW); err != nil {
		return 0
	}
	return st.Mtim.Nano()
}

func writeIndex(path string, idx index) error {
	f, err := os.CreateTemp(filepath.Dir(path), ".index-*")
	if err != nil {
		return err
	}
	defer os.Remove(f.Name())
	if err := json.NewEncoder(f).Encode(idx); err != nil {
		f.Close()
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	err = os.Rename(f.Name(), path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	return err
}
