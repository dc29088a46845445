package fsutil_test

import (
	"bytes"
	"crypto/rand"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"app/incarnate/internal/fsutil"
	"app/incarnate/internal/testbase"
)

// everyKind fills dir with one of each thing CopyTree must keep, and a
// few hundred small files so the workers share the work.
func everyKind(t *testing.T, dir string) {
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	write := func(rel string, data []byte, mode os.FileMode) string {
		p := filepath.Join(dir, rel)
		must(os.MkdirAll(filepath.Dir(p), 0o755))
		must(os.WriteFile(p, data, mode))
		must(os.Chmod(p, mode))
		return p
	}
	big := make([]byte, 3<<20)
	_, _ = rand.Read(big)
	write("big", big, 0o644)
	write("empty", nil, 0o600)
	must(unix.Chown(write("suid", []byte("#!/bin/sh\n"), 0o4755|os.ModeSetuid), 1234, 5678))
	must(os.Chmod(filepath.Join(dir, "suid"), 0o4755|os.ModeSetuid))
	must(unix.Lsetxattr(write("noted", []byte("n"), 0o640), "user.note", []byte("kept"), 0))
	for i := range 300 {
		write(fmt.Sprintf("many/%02d/f%03d", i/50, i), []byte(strings.Repeat("x", i)), 0o644)
	}
	// Hard links across directories, and a read-only directory.
	a := write("links/a", []byte("shared"), 0o644)
	must(os.Link(a, filepath.Join(dir, "links/b")))
	must(os.MkdirAll(filepath.Join(dir, "ro/inner"), 0o755))
	must(os.Link(a, filepath.Join(dir, "ro/inner/c")))
	// What an upper dir holds: a whiteout, an opaque dir, a fifo.
	must(unix.Mknod(filepath.Join(dir, "gone"), unix.S_IFCHR|0o000, 0))
	must(os.Mkdir(filepath.Join(dir, "opaque"), 0o755))
	must(unix.Lsetxattr(filepath.Join(dir, "opaque"), "trusted.overlay.opaque", []byte("y"), 0))
	must(unix.Mkfifo(filepath.Join(dir, "fifo"), 0o620))
	must(unix.Mknod(filepath.Join(dir, "loop"), unix.S_IFBLK|0o660, int(unix.Mkdev(7, 3))))
	must(os.Chmod(filepath.Join(dir, "loop"), 0o660)) // past the umask
	must(os.Symlink("../nowhere", filepath.Join(dir, "links/dangling")))
	must(unix.Lchown(filepath.Join(dir, "links/dangling"), 1234, 1234))
	// A sparse file: data at both ends of a 64 MiB hole.
	f, err := os.Create(filepath.Join(dir, "sparse"))
	must(err)
	_, err = f.WriteAt([]byte("head"), 0)
	must(err)
	_, err = f.WriteAt([]byte("tail"), 64<<20)
	must(err)
	must(f.Close())
	must(os.Chmod(filepath.Join(dir, "ro"), 0o555))
	// Times last, so creating entries does not move a directory's.
	old := time.Date(2001, 2, 3, 4, 5, 6, 789, time.UTC)
	must(filepath.Walk(dir, func(p string, _ os.FileInfo, err error) error {
		must(err)
		ts := []unix.Timespec{unix.NsecToTimespec(old.UnixNano()), unix.NsecToTimespec(old.UnixNano())}
		old = old.Add(time.Hour)
		return unix.UtimesNanoAt(unix.AT_FDCWD, p, ts, unix.AT_SYMLINK_NOFOLLOW)
	}))
}

func TestCopyTreeIsExact(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root: the tree holds other users' files, a device and trusted.* attributes")
	}
	src := filepath.Join(t.TempDir(), "src")
	everyKind(t, src)
	dst := filepath.Join(t.TempDir(), "dst")
	var copied atomic.Int64
	if err := fsutil.CopyTree(src, dst, func(n int) { copied.Add(int64(n)) }); err != nil {
		t.Fatal(err)
	}
	// Every byte of content is counted once; of the sparse file, only its
	// two data blocks.
	dense := int64(3<<20 + len("#!/bin/sh\n") + len("n") + 299*300/2 + len("shared"))
	if n := copied.Load(); n < dense+8 || n > dense+1<<20 {
		t.Errorf("counted %d bytes copied, want %d and the sparse file's data", n, dense)
	}
	want, got := testbase.ExactDigest(t, src), testbase.ExactDigest(t, dst)
	if got != want {
		t.Fatalf("copy differs:\n%s", lineDiff(want, got))
	}
	// The digest is only as good as what it sees: make sure it saw them.
	for _, s := range []string{
		"sparse mode=100644 uid=0 gid=0 rdev=0 size=67108868 holey=true",
		"links/a mode=100644 uid=0 gid=0 rdev=0 size=6 holey=false nlink=3",
		"suid mode=104755 uid=1234 gid=5678",
		"opaque mode=40755 uid=0 gid=0 rdev=0 size=4096 holey=false nlink=2 mtime=",
		`trusted.overlay.opaque="y"`, `user.note="kept"`,
		"gone mode=20000", "loop mode=60660 uid=0 gid=0 rdev=1795",
		"ro mode=40555", "mtime=981173106.000000789",
		"links/dangling mode=120777 uid=1234 gid=1234",
	} {
		if !strings.Contains(got, s) {
			t.Errorf("the copy has no %q:\n%s", s, got)
		}
	}
}

func lineDiff(want, got string) string {
	var b bytes.Buffer
	w, g := strings.Split(want, "\n"), strings.Split(got, "\n")
	for i := 0; i < max(len(w), len(g)); i++ {
		var wl, gl string
		if i < len(w) {
			wl = w[i]
		}
		if i < len(g) {
			gl = g[i]
		}
		if wl != gl {
			fmt.Fprintf(&b, "want %s\n got %s\n", wl, gl)
		}
	}
	return b.String()
}

func TestCopyTreeLeavesAnExistingDestinationAlone(t *testing.T) {
	src, dst := t.TempDir(), t.TempDir()
	if err := os.WriteFile(filepath.Join(src, "f"), []byte("new"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dst, "f"), []byte("old"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := fsutil.CopyTree(src, dst, nil); err == nil {
		t.Fatal("copying onto an existing directory succeeded")
	}
	if b, _ := os.ReadFile(filepath.Join(dst, "f")); string(b) != "old" {
		t.Errorf("the destination's file now holds %q", b)
	}
	if err := fsutil.CopyTree(filepath.Join(src, "f"), filepath.Join(dst, "g"), nil); err == nil {
		t.Error("copying a file as a tree succeeded")
	}
	if err := fsutil.CopyTree(filepath.Join(src, "missing"), filepath.Join(dst, "h"), nil); err == nil {
		t.Error("copying a missing tree succeeded")
	}
}
