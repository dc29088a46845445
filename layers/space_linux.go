package layers

import (
	"errors"
	"fmt"
	"io"
	"os"

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
	block   int64 // the file system's block size
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
	g.block = max(st.Bsize, 512)
}

// room is called before a file of size bytes is written, and refuses it
// when it would not fit. A file takes whole blocks, one at least: 20,000
// files of a byte take 80 MiB of a file system of 4 KiB blocks.
func (g *spaceGuard) room(size int64, name string) error {
	if g.block > 0 {
		size = max((size+g.block-1)/g.block*g.block, g.block)
	}
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

// guardedWriter writes to w what its guard lets through, as the data of
// a file called name. Each write is counted in whole blocks, so it is
// given big writes (see copyGuarded).
type guardedWriter struct {
	w    io.Writer
	g    *spaceGuard
	name string
	n    int64 // written so far, for the refusal
}

func (gw *guardedWriter) Write(p []byte) (int, error) {
	if err := gw.g.room(int64(len(p)), gw.name+" (past "+progress.HumanSize(gw.n)+")"); err != nil {
		return 0, err
	}
	n, err := gw.w.Write(p)
	gw.n += int64(n)
	return n, err
}

// copyGuarded copies r to f, the file called name, asking g before each
// MiB. The reader's own WriteTo is hidden: its writes could be of any size.
func copyGuarded(f *os.File, r io.Reader, g *spaceGuard, name string) error {
	_, err := io.CopyBuffer(&guardedWriter{w: f, g: g, name: name}, struct{ io.Reader }{r}, make([]byte, 1<<20))
	return err
}
