package session

import (
	"fmt"
	"os"

	"golang.org/x/sys/unix"

	"github.com/incarnate-dev/incarnate/layers"
)

var errNotEmpty = unix.ENOTEMPTY

// sessionLock is an exclusive flock on a session's directory, held while
// the session is mounted or changed. The kernel drops it when the holder
// dies, so a crash never leaves a stale lock.
type sessionLock struct{ f *os.File }

func (s *Store) lock(name string) (*sessionLock, error) {
	f, err := os.Open(s.Dir(name))
	if err != nil {
		return nil, err
	}
	if err := unix.Flock(int(f.Fd()), unix.LOCK_EX|unix.LOCK_NB); err != nil {
		f.Close()
		if err == unix.EWOULDBLOCK {
			return nil, fmt.Errorf("session %q is %w by another incarnate process; try again when it ends", name, layers.ErrInUse)
		}
		return nil, err
	}
	return &sessionLock{f: f}, nil
}

func (l *sessionLock) release() { l.f.Close() }

// renameNoReplace renames like rename(2) but fails with EEXIST instead of
// replacing an empty directory at newpath.
func renameNoReplace(oldpath, newpath string) error {
	err := unix.Renameat2(unix.AT_FDCWD, oldpath, unix.AT_FDCWD, newpath, unix.RENAME_NOREPLACE)
	if err != nil {
		return &os.LinkError{Op: "rename", Old: oldpath, New: newpath, Err: err}
	}
	return nil
}
