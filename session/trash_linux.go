package session

import (
	"errors"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strconv"
	"syscall"

	"golang.org/x/sys/unix"

	"github.com/incarnate-dev/incarnate/internal/faults"
	"github.com/incarnate-dev/incarnate/internal/fsutil"
)

// PurgeCommand is the hidden command the binary runs, detached, to
// delete what is in trash/. The cli dispatches it to Store.Purge.
const PurgeCommand = "__purge"

// toTrash moves path into trash/ at once (a rename, O(1) whatever its
// size), so it is gone from every listing, and has it deleted in the
// background.
//
// One rename, under a name of its own: a directory made first to rename
// into would be a purger's to delete in between (a purge another command
// started runs at any time), and the rename would find it gone.
func (s *Store) toTrash(path, name string) error {
	for tries := 0; ; tries++ {
		dst := filepath.Join(s.Root, "trash", name+"-"+strconv.FormatUint(rand.Uint64(), 36))
		err := unix.Renameat2(unix.AT_FDCWD, path, unix.AT_FDCWD, dst, unix.RENAME_NOREPLACE)
		if err == nil {
			break
		}
		if err != unix.EEXIST || tries > 10 {
			return &os.LinkError{Op: "rename", Old: path, New: dst, Err: err}
		}
	}
	faults.Point("trashed")
	s.purgeInBackground()
	return nil
}

// purgeInBackground starts a detached incarnate that empties trash/. It
// outlives this process; a crash of it is picked up at the next start.
func (s *Store) purgeInBackground() {
	null, err := os.OpenFile(os.DevNull, os.O_RDWR, 0)
	if err != nil {
		return
	}
	defer null.Close()
	fd := null.Fd()
	pid, err := syscall.ForkExec("/proc/self/exe", []string{"incarnate", PurgeCommand, "--root", s.Root}, &syscall.ProcAttr{
		Env:   os.Environ(),
		Files: []uintptr{fd, fd, fd},
		Sys:   &syscall.SysProcAttr{Setsid: true},
	})
	if err == nil {
		go func() { var ws unix.WaitStatus; _, _ = unix.Wait4(pid, &ws, 0, nil) }()
	}
}

// Purge deletes everything in trash/, never crossing into another mount.
// One purger works at a time (an flock on trash/); entries added while it
// runs are taken in its next round.
func (s *Store) Purge() error {
	trash := filepath.Join(s.Root, "trash")
	for {
		f, err := os.Open(trash)
		if err != nil {
			return err
		}
		if unix.Flock(int(f.Fd()), unix.LOCK_EX|unix.LOCK_NB) != nil {
			f.Close()
			return nil // another purger holds it and will see our entries
		}
		err = emptyDir(trash)
		f.Close()
		// An entry that arrived after the last listing, while we held the
		// lock, was left to us by its purger: look once more.
		if ents, _ := os.ReadDir(trash); err != nil || len(ents) == 0 {
			return err
		}
	}
}

// emptyDir deletes what dir holds, each entry whatever became of those
// before it: one that cannot go (a mount inside it, refused) must not
// keep the others, and every later command's purge, waiting on it.
func emptyDir(dir string) error {
	ents, err := os.ReadDir(dir)
	if err != nil {
		return err
	}
	var errs []error
	for _, e := range ents {
		if err := fsutil.RemoveTree(filepath.Join(dir, e.Name())); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}
