package fsutil

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"golang.org/x/sys/unix"
)

// ErrCrossesMount is returned when a tree to delete or copy has something
// mounted inside it; that part is left alone.
var ErrCrossesMount = errors.New("tree has a mount inside it")

// RemoveTree deletes root and everything below it without ever entering
// another mount: an entry on a mount other than root's (a bind of
// someone's home, say, even one from the same file system) is refused,
// not emptied, and what lies beside it still goes. Every step is
// relative to the directory above it, opened with no symlink followed,
// so a tree deeper than PATH_MAX goes too, and nothing a session swapped
// in meanwhile leads out of the tree. The error is the first refusal.
func RemoveTree(root string) error {
	if _, err := lstatPath(root); errors.Is(err, unix.ENOENT) {
		return nil
	} else if err != nil {
		return err
	}
	parent, err := unix.Open(filepath.Dir(root), unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return &os.PathError{Op: "open", Path: filepath.Dir(root), Err: err}
	}
	defer unix.Close(parent)
	// The mount is the parent's: root itself mounted there (a bind
	// planted in trash/) is refused like one further down.
	_, m, err := statAt(parent, "")
	if err != nil {
		return &os.PathError{Op: "stat", Path: filepath.Dir(root), Err: err}
	}
	return removeAt(parent, filepath.Base(root), m, root)
}

// removeAt removes name in directory dirfd, which must be on mount m;
// path names it in errors.
func removeAt(dirfd int, name string, m mount, path string) error {
	st, em, err := statAt(dirfd, name)
	if errors.Is(err, unix.ENOENT) {
		return nil
	} else if err != nil {
		return &os.PathError{Op: "lstat", Path: path, Err: err}
	}
	if em != m {
		return fmt.Errorf("remove %q: %w", path, ErrCrossesMount)
	}
	if st.Mode&unix.S_IFMT != unix.S_IFDIR {
		return ignoreMissing(unix.Unlinkat(dirfd, name, 0), path)
	}
	if st.Mode&0o700 != 0o700 {
		// A directory the session made unreadable is still ours to delete.
		_ = unix.Fchmodat(dirfd, name, 0o700, 0)
	}
	fd, err := openDirBeneath(dirfd, name)
	if err != nil {
		return ignoreMissing(err, path)
	}
	f := os.NewFile(uintptr(fd), path)
	var first error
	for {
		names, err := f.Readdirnames(1024)
		for _, n := range names {
			if err := removeAt(fd, n, m, ShortJoin(path, n)); err != nil && first == nil {
				first = err // the rest goes all the same
			}
		}
		if err != nil {
			break
		}
	}
	f.Close()
	if first != nil {
		return first
	}
	return ignoreMissing(unix.Unlinkat(dirfd, name, unix.AT_REMOVEDIR), path)
}

// openDirBeneath opens directory name in dirfd for reading, refusing a
// symlink and a mount point (RESOLVE_NO_XDEV: whatever was mounted there
// since it was looked at).
func openDirBeneath(dirfd int, name string) (int, error) {
	for {
		fd, err := unix.Openat2(dirfd, name, &unix.OpenHow{
			Flags:   unix.O_RDONLY | unix.O_DIRECTORY | unix.O_NOFOLLOW | unix.O_CLOEXEC,
			Resolve: unix.RESOLVE_BENEATH | unix.RESOLVE_NO_SYMLINKS | unix.RESOLVE_NO_XDEV,
		})
		if err == unix.EINTR || err == unix.EAGAIN {
			continue
		}
		if err == unix.ENOSYS {
			// Before 5.6: O_NOFOLLOW on the one name, and the mount
			// check its caller made.
			return unix.Openat(dirfd, name, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
		}
		return fd, err
	}
}

func ignoreMissing(err error, path string) error {
	if err == nil || errors.Is(err, unix.ENOENT) {
		return nil
	}
	return &os.PathError{Op: "remove", Path: path, Err: err}
}
