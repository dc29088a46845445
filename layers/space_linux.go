package layers

import (
	"errors"
	"fmt"

	"golang.org/x/sys/unix"

	"github.com/incarnate-dev/incarnate/internal/progress"
)

// ErrNoSpace: an import stopped before it filled the store's file system.
var ErrNoSpace = errors.New("not enough space in the store")

// spaceGuard keeps an import from filling the file system it writes to:
// before a file whose data would pass what is free, less a reserve, the
// import stops. It asks the file system again every checkEvery bytes, as
// other writers share it.
type spaceGuard struct {
	fd      int   // a directory on the file system written to
	free    int64 // bytes free at the last look, less the reserve
	pending int64 // written since
}

const checkEvery = 32 << 20

// newSpaceGuard looks at the file system of directory fd.
func newSpaceGuard(fd int) *spaceGuard {
	g := &spaceGuard{fd: fd}
	g.look()
	return g
}

// reserve is what an import leaves free: a twentieth of the file system,
// at most 512 MiB, so the sessions on it can still write.
func reserve(st *unix.Statfs_t) int64 {
	return min(int64(st.Blocks)*st.Bsize/20, 512<<20)
}

func (g *spaceGuard) look() {
	var st unix.Statfs_t
	if unix.Fstatfs(g.fd, &st) != nil {
		g.free = 1 << 62 // cannot tell: the write itself will say
		return
	}
	g.free = int64(st.Bavail)*st.Bsize - reserve(&st)
	g.pending = 0
}

// room is called before size more bytes are written, and refuses them
// when they would not fit.
func (g *spaceGuard) room(size int64, name string) error {
	if g.pending+size > checkEvery || size > g.free-g.pending {
		g.look()
	}
	if size > g.free-g.pending {
		return fmt.Errorf("%w: %s needs %s, and the store's file system has %s left before its reserve; free some space there, or import into a store elsewhere (--root)",
			ErrNoSpace, name, progress.HumanSize(size), progress.HumanSize(max(g.free-g.pending, 0)))
	}
	g.pending += size
	return nil
}
