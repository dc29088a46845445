package fsutil

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"golang.org/x/sys/unix"
)

// ErrCrossesMount is returned when a tree to delete has something from
// another file system mounted inside it; that part is left alone.
var ErrCrossesMount = errors.New("tree has a mount inside it")

// RemoveTree deletes root and everything below it without ever entering
// another file system: a directory on a different device than root is a
// mount point (a bind of someone's home, say) and is refused, not emptied.
func RemoveTree(root string) error {
	var st unix.Stat_t
	if err := unix.Lstat(root, &st); err != nil {
		if errors.Is(err, unix.ENOENT) {
			return nil
		}
		return &os.PathError{Op: "lstat", Path: root, Err: err}
	}
	return removeOn(root, st.Dev)
}

func removeOn(path string, dev uint64) error {
	var st unix.Stat_t
	if err := unix.Lstat(path, &st); err != nil {
		if errors.Is(err, unix.ENOENT) {
			return nil
		}
		return &os.PathError{Op: "lstat", Path: path, Err: err}
	}
	if st.Dev != dev {
		return fmt.Errorf("remove %q: %w", path, ErrCrossesMount)
	}
	if st.Mode&unix.S_IFMT != unix.S_IFDIR {
		return ignoreMissing(unix.Unlink(path), path)
	}
	if st.Mode&0o700 != 0o700 {
		// A directory the session made unreadable is still ours to delete.
		_ = unix.Chmod(path, 0o700)
	}
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	for {
		names, err := f.Readdirnames(1024)
		for _, n := range names {
			if err := removeOn(filepath.Join(path, n), dev); err != nil {
				f.Close()
				return err
			}
		}
		if err != nil {
			break
		}
	}
	f.Close()
	return ignoreMissing(unix.Rmdir(path), path)
}

func ignoreMissing(err error, path string) error {
	if err == nil || errors.Is(err, unix.ENOENT) {
		return nil
	}
	return &os.PathError{Op: "remove", Path: path, Err: err}
}
