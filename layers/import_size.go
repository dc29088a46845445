package layers

import (
	"os"

	"golang.org/x/sys/unix"

	"github.com/incarnate-dev/incarnate/internal/fsutil"
)

// diskUsage is what the tree at dir takes on disk, as du counts it:
// allocated blocks, each hard-linked inode once. Layers are immutable,
// so this is measured once, when a base is recorded, and never by ls.
func diskUsage(dir string) (int64, error) {
	type inode struct{ dev, ino uint64 }
	seen := map[inode]bool{}
	var root unix.Stat_t
	if err := unix.Lstat(dir, &root); err != nil {
		return 0, &os.PathError{Op: "lstat", Path: dir, Err: err}
	}
	total := root.Blocks * 512
	err := fsutil.Walk(dir, func(_ int, _, _ string, st *unix.Stat_t) error {
		if st.Nlink > 1 && st.Mode&unix.S_IFMT != unix.S_IFDIR {
			key := inode{st.Dev, st.Ino}
			if seen[key] {
				return nil
			}
			seen[key] = true
		}
		total += st.Blocks * 512
		return nil
	})
	return total, err
}
