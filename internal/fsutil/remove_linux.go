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
// Every step is relative to the directory above it, opened with no
// symlink followed, so a tree deeper than PATH_MAX goes too, and nothing
// a session swapped in meanwhile leads out of the tree.
func RemoveTree(root string) error {
	var st unix.Stat_t
	if err := unix.Lstat(root, &st); err != nil {
		if errors.Is(err, unix.ENOENT) {
			return nil
		}
		return &os.PathError{Op: "lstat", Path: root, Err: err}
	}
	parent, err := unix.Open(filepath.Dir(root), unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return &os.PathError{Op: "open", Path: filepath.Dir(root), Err: err}
	}
	defer unix.Close(parent)
	return removeAt(parent, filepath.Base(root), st.Dev, root)
}

// removeAt removes name in directory dirfd; path names it in errors.
func removeAt(dirfd int, name string, dev uint64, path string) error {
	var st unix.Stat_t
	if err := unix.Fstatat(dirfd, name, &st, unix.AT_SYMLINK_NOFOLLOW); err != nil {
		if errors.Is(err, unix.ENOENT) {
			return nil
		}
		return &os.PathError{Op: "lstat", Path: path, Err: err}
	}
	if st.Dev != dev {
		return fmt.Errorf("remove %q: %w", path, ErrCrossesMount)
	}
	if st.Mode&unix.S_IFMT != unix.S_IFDIR {
		return ignoreMissing(unix.Unlinkat(dirfd, name, 0), path)
	}
	if st.Mode&0o700 != 0o700 {
		// A directory the session made unreadable is still ours to delete.
		_ = unix.Fchmodat(dirfd, name, 0o700, 0)
	}
	fd, err := unix.Openat(dirfd, name, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
	if err != nil {
		return ignoreMissing(err, path)
	}
	f := os.NewFile(uintptr(fd), path)
	for {
		names, err := f.Readdirnames(1024)
		for _, n := range names {
			if err := removeAt(fd, n, dev, ShortJoin(path, n)); err != nil {
				f.Close()
				return err
			}
		}
		if err != nil {
			break
		}
	}
	f.Close()
	return ignoreMissing(unix.Unlinkat(dirfd, name, unix.AT_REMOVEDIR), path)
}

func ignoreMissing(err error, path string) error {
	if err == nil || errors.Is(err, unix.ENOENT) {
		return nil
	}
	return &os.PathError{Op: "remove", Path: path, Err: err}
}
