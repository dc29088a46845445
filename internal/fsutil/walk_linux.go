package fsutil

import (
	"errors"
	"io"
	"os"
	"strconv"

	"golang.org/x/sys/unix"
)

// WalkFn is called for each entry below a walked directory: name in the
// directory dirfd, its lstat, and at a short path that names it (through
// /proc/self/fd, valid during the call) for calls that take a path.
type WalkFn func(dirfd int, name, at string, st *unix.Stat_t) error

// Walk calls fn for every entry below root, a directory before what it
// holds, going from directory fd to directory fd: no path grows with the
// depth, so a tree deeper than PATH_MAX is walked like any other, and no
// symlink is followed.
//
// A mount inside the tree (an entry on a mount other than root's, a bind
// of the same file system included) is skipped: fn is not called on it
// and it is not entered. Walks measure a tree or change its owners, and
// what is mounted there is not part of it: its size is someone else's,
// and a chown through it would change the host's files.
func Walk(root string, fn WalkFn) error {
	return WalkAt(unix.AT_FDCWD, root, fn)
}

// WalkAt is Walk of directory name in dirfd, which is not followed if it
// is a symlink.
func WalkAt(dirfd int, name string, fn WalkFn) error {
	fd, err := unix.Openat(dirfd, name, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
	if err != nil {
		return &os.PathError{Op: "open", Path: name, Err: err}
	}
	f := os.NewFile(uintptr(fd), name)
	_, m, err := statAt(fd, "")
	if err != nil {
		f.Close()
		return &os.PathError{Op: "stat", Path: name, Err: err}
	}
	return walkDir(f, m, fn)
}

// walkDir walks directory f, on mount m, and closes it.
func walkDir(f *os.File, m mount, fn WalkFn) error {
	defer f.Close()
	fd := int(f.Fd())
	prefix := "/proc/self/fd/" + strconv.Itoa(fd) + "/"
	for {
		names, err := f.Readdirnames(1024)
		for _, n := range names {
			st, em, err := statAt(fd, n)
			if err != nil {
				return &os.PathError{Op: "lstat", Path: ShortJoin(f.Name(), n), Err: err}
			}
			if em != m {
				continue // a mount point: see Walk
			}
			if err := fn(fd, n, prefix+n, &st); err != nil {
				return err
			}
			if st.Mode&unix.S_IFMT != unix.S_IFDIR {
				continue
			}
			sub, err := openDirBeneath(fd, n)
			if errors.Is(err, unix.EXDEV) {
				continue // mounted on since it was looked at
			}
			if err != nil {
				return &os.PathError{Op: "open", Path: ShortJoin(f.Name(), n), Err: err}
			}
			if err := walkDir(os.NewFile(uintptr(sub), ShortJoin(f.Name(), n)), m, fn); err != nil {
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

// ShortJoin is dir/name for messages, kept short in a deep tree: its
// start and its end, which say where it is.
func ShortJoin(dir, name string) string {
	p := dir + "/" + name
	if len(p) <= 512 {
		return p
	}
	return p[:200] + "…" + p[len(p)-200:]
}
