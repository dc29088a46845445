package fsutil

import (
	"os"
	"path/filepath"
	"strings"
	"time"

	"golang.org/x/sys/unix"
)

// A Workspace is a directory under a store's tmp/ where an operation
// builds something before renaming it into place. It is locked (flock)
// for as long as the operation runs, so the start-up clean-up can tell
// debris of a crashed operation (unlocked: the kernel dropped the lock
// with the process) from one still running (locked).
type Workspace struct {
	Dir  string
	lock *os.File
}

// NewWorkspace makes and locks a fresh directory in tmpRoot. It is made
// under a hidden name and shows under its own only once locked: made and
// then locked in place, a start-up clean-up running in between would
// take it for debris.
func NewWorkspace(tmpRoot, prefix string) (*Workspace, error) {
	hidden, err := os.MkdirTemp(tmpRoot, "."+prefix)
	if err != nil {
		return nil, err
	}
	f, err := os.Open(hidden)
	if err != nil {
		os.Remove(hidden)
		return nil, err
	}
	if err := unix.Flock(int(f.Fd()), unix.LOCK_EX); err != nil {
		f.Close()
		os.Remove(hidden)
		return nil, err
	}
	dir := filepath.Join(tmpRoot, filepath.Base(hidden)[1:])
	if err := os.Rename(hidden, dir); err != nil {
		f.Close()
		os.Remove(hidden)
		return nil, err
	}
	return &Workspace{Dir: dir, lock: f}, nil
}

// Path is a name inside the workspace.
func (w *Workspace) Path(name string) string { return filepath.Join(w.Dir, name) }

// Discard deletes what is left of the workspace and unlocks it.
func (w *Workspace) Discard() error {
	err := RemoveTree(w.Dir)
	w.lock.Close()
	return err
}

// CleanStale deletes every workspace in tmpRoot that no running
// operation holds: what crashed operations left behind. What is not yet
// a workspace (a hidden one being made, a file being written to link
// elsewhere) is someone's work in progress unless it is older than
// staleAfter: only a crash leaves it that long.
func CleanStale(tmpRoot string) error {
	ents, err := os.ReadDir(tmpRoot)
	if err != nil {
		return err
	}
	for _, e := range ents {
		p := filepath.Join(tmpRoot, e.Name())
		if !e.IsDir() || strings.HasPrefix(e.Name(), ".") {
			if fi, err := e.Info(); err != nil || time.Since(fi.ModTime()) < staleAfter {
				continue
			}
		}
		f, err := os.Open(p)
		if err != nil {
			continue
		}
		if unix.Flock(int(f.Fd()), unix.LOCK_EX|unix.LOCK_NB) == nil {
			_ = RemoveTree(p)
		}
		f.Close()
	}
	return nil
}

// staleAfter is how long a file in tmp/ that is no workspace may be in
// the making.
const staleAfter = time.Minute
