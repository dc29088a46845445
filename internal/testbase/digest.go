package testbase

import (
	"crypto/sha256"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"

	"golang.org/x/sys/unix"
)

// ExactDigest hashes everything a copy must keep: paths, types, modes,
// owners, device numbers, sizes, holes, link counts, link targets,
// contents, extended attributes and modification times. Whiteouts' link counts are left out:
// overlayfs links them to a shared inode in its work dir, which is not
// part of the session. A file counts as holey when it takes less disk
// than its size; cp may punch out more zeros than the original had.
func ExactDigest(t testing.TB, root string) string {
	t.Helper()
	var lines []string
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		var st unix.Stat_t
		if err := unix.Lstat(p, &st); err != nil {
			return err
		}
		rel, _ := filepath.Rel(root, p)
		nlink := st.Nlink
		if st.Mode&unix.S_IFMT == unix.S_IFCHR && st.Rdev == 0 {
			nlink = 0
		}
		holey := st.Mode&unix.S_IFMT == unix.S_IFREG && st.Blocks*512 < st.Size
		line := fmt.Sprintf("%s mode=%o uid=%d gid=%d rdev=%d size=%d holey=%v nlink=%d mtime=%d.%09d xattrs=%s",
			rel, st.Mode, st.Uid, st.Gid, st.Rdev, st.Size, holey, nlink, st.Mtim.Sec, st.Mtim.Nsec, xattrs(p))
		switch st.Mode & unix.S_IFMT {
		case unix.S_IFLNK:
			target, _ := os.Readlink(p)
			line += " -> " + target
		case unix.S_IFREG:
			f, err := os.Open(p)
			if err != nil {
				return err
			}
			h := sha256.New()
			_, _ = io.Copy(h, f)
			f.Close()
			line += fmt.Sprintf(" sha=%x", h.Sum(nil))
		}
		if p == root {
			line = strings.Replace(line, rel, ".", 1)
		}
		lines = append(lines, line)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return strings.Join(lines, "\n")
}

func xattrs(p string) string {
	buf := make([]byte, 4096)
	n, err := unix.Llistxattr(p, buf)
	if err != nil || n == 0 {
		return "-"
	}
	names := strings.Split(strings.TrimRight(string(buf[:n]), "\x00"), "\x00")
	sort.Strings(names)
	var out []string
	for _, name := range names {
		v := make([]byte, 4096)
		m, _ := unix.Lgetxattr(p, name, v)
		out = append(out, fmt.Sprintf("%s=%q", name, v[:max(m, 0)]))
	}
	return strings.Join(out, ",")
}
