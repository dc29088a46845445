package fsutil

import (
	"fmt"
	"os"

	"golang.org/x/sys/unix"
)

// OwnedDir checks that dir is a directory of the caller's own that no one
// else may write: where incarnate deletes and creates on the caller's
// behalf, a directory someone else made or can change (a symlink planted
// in a store under /tmp, a group-writable one) would point that work at
// what they chose. The error says what is wrong and what to do.
func OwnedDir(dir string) error {
	var st unix.Stat_t
	if err := unix.Lstat(dir, &st); err != nil {
		return &os.PathError{Op: "lstat", Path: dir, Err: err}
	}
	switch {
	case st.Mode&unix.S_IFMT == unix.S_IFLNK:
		return fmt.Errorf("%s is a symlink where incarnate keeps a directory of its own; remove it", dir)
	case st.Mode&unix.S_IFMT != unix.S_IFDIR:
		return fmt.Errorf("%s is not a directory; remove it", dir)
	case int(st.Uid) != os.Geteuid():
		return fmt.Errorf("%s belongs to uid %d, not to you (%d); use a store of your own (--root)", dir, st.Uid, os.Geteuid())
	case st.Mode&0o022 != 0:
		return fmt.Errorf("%s can be written by others (mode %#o); chmod go-w it", dir, st.Mode&0o7777)
	}
	return nil
}
