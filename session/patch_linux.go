package session

import (
	"bytes"
	"crypto/sha256"
	"fmt"
	"io"
	"os"
	"strconv"

	"github.com/aymanbagabas/go-udiff"
	"golang.org/x/sys/unix"

	"github.com/incarnate-dev/incarnate/internal/progress"
	"github.com/incarnate-dev/incarnate/internal/termtext"
)

// patchMax is the largest file shown as text; a bigger one, or one with
// a NUL byte in it, is shown by size and hash, as git shows a binary.
const patchMax = 1 << 20

// SelectChanges keeps the changes at or below paths (all when none);
// each path must name at least one of them.
func SelectChanges(changes []Change, paths []string) ([]Change, error) {
	return selectPaths(changes, paths)
}

// Patch writes unified diffs of changes (as Diff found them in session
// name) to w: each file's base version against the session's, where the
// base of a path below a :cow bind is the bind's host source. What a
// session wrote is shown, never obeyed: controls become visible escapes.
func (s *Store) Patch(name string, changes []Change, w io.Writer) error {
	m, lowers, err := s.overlayOf(name)
	if err != nil {
		return err
	}
	host, err := unix.Open("/", unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return err
	}
	defer unix.Close(host)
	inCow := hostTarget(m, false)
	upper, err := unix.Open(s.upperDir(name), unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return err
	}
	defer unix.Close(upper)
	below, err := openLowers(lowers)
	defer closeLowers(below)
	if err != nil {
		return err
	}
	for _, c := range changes {
		var old, cur version
		if src, ok := inCow(c.Path); ok && (c.Kind == Modified || c.Kind == Deleted) {
			old = readVersion(host, src)
		} else if c.Kind == Modified || c.Kind == Deleted {
			for _, l := range below {
				if old = readVersion(l.fd(), c.Path); old.found {
					break
				}
			}
		}
		if c.Kind != Deleted {
			cur = readVersion(upper, c.Path)
		}
		if old.dir || cur.dir || (!old.found && !cur.found) {
			continue
		}
		if _, err := io.WriteString(w, patchOf(c.Path, old, cur)); err != nil {
			return err
		}
	}
	return nil
}

// version is what a path holds in one tree.
type version struct {
	found, dir, binary bool
	text               string // content, or a symlink's "-> target"
	size               int64
	sum                [32]byte
}

// readVersion reads path p beneath directory fd root.
func readVersion(root int, p string) version {
	fd, err := openBeneath(root, rel(p))
	if err != nil {
		return version{}
	}
	defer unix.Close(fd)
	var st unix.Stat_t
	if unix.Fstat(fd, &st) != nil {
		return version{}
	}
	v := version{found: true, size: st.Size}
	switch st.Mode & unix.S_IFMT {
	case unix.S_IFDIR:
		v.dir = true
	case unix.S_IFLNK:
		buf := make([]byte, unix.PathMax)
		n, _ := unix.Readlinkat(fd, "", buf)
		v.text = "-> " + string(buf[:n]) + "\n"
	case unix.S_IFREG:
		f, err := os.Open("/proc/self/fd/" + strconv.Itoa(fd))
		if err != nil {
			return version{}
		}
		defer f.Close()
		h := sha256.New()
		var head bytes.Buffer
		_, _ = io.Copy(io.MultiWriter(h, &limited{&head, patchMax + 1}), f)
		copy(v.sum[:], h.Sum(nil))
		v.binary = head.Len() > patchMax || bytes.IndexByte(head.Bytes(), 0) >= 0
		if !v.binary {
			v.text = head.String()
		}
	default:
		v.binary = true // a device or fifo: no content to show
	}
	return v
}

// limited writes on to w up to n bytes, and takes the rest silently.
type limited struct {
	w *bytes.Buffer
	n int
}

func (l *limited) Write(p []byte) (int, error) {
	if room := l.n - l.w.Len(); room > 0 {
		l.w.Write(p[:min(len(p), room)])
	}
	return len(p), nil
}

// patchOf is the unified diff of path p from old to cur.
func patchOf(p string, old, cur version) string {
	from, to := "a"+p, "b"+p
	if !old.found {
		from = "/dev/null"
	}
	if !cur.found {
		to = "/dev/null"
	}
	if old.binary || cur.binary {
		return fmt.Sprintf("Binary %s: %s -> %s\n", termtext.Visible(p), describe(old), describe(cur))
	}
	return termtext.VisibleText(udiff.Unified(from, to, old.text, cur.text))
}

func describe(v version) string {
	if !v.found {
		return "none"
	}
	return fmt.Sprintf("%s, sha256 %x", progress.HumanSize(v.size), v.sum[:6])
}
