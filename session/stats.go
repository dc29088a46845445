package session

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"syscall"
	"time"

	"app/incarnate/internal/fsutil"
)

// Stats describe what a session holds: the disk its upper dir takes and
// how many paths it changed. Walking every upper dir on every `ls` would
// not scale to a thousand sessions, so they are cached in stats.json and
// recomputed only when the session was entered after they were taken.
type Stats struct {
	Size    int64     `json:"size"`
	Changes int       `json:"changes"`
	Taken   time.Time `json:"taken"`
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
func measureUpper(upper string) (Stats, error) {
	st := Stats{Taken: time.Now()}
	err := filepath.WalkDir(upper, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		fi, err := d.Info()
		if err != nil {
			return err
		}
		if sys, ok := fi.Sys().(*syscall.Stat_t); ok {
			st.Size += sys.Blocks * 512
		}
		if p != upper {
			st.Changes++
		}
		return nil
	})
	return st, err
}
