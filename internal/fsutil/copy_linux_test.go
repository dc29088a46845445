package fsutil_test

import (
	"bytes"
	"crypto/rand"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/incarnate-dev/incarnate/internal/fsutil"
	"github.com/incarnate-dev/incarnate/internal/testbase"
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

// aclXattr encodes a POSIX ACL the way the kernel stores it in
// system.posix_acl_*: version 2, then (tag, perm, id) entries.
func aclXattr(entries ...[3]uint32) []byte {
	b := []byte{2, 0, 0, 0}
	for _, e := range entries {
		b = append(b, byte(e[0]), byte(e[0]>>8), byte(e[1]), byte(e[1]>>8),
			byte(e[2]), byte(e[2]>>8), byte(e[2]>>16), byte(e[2]>>24))
	}
	return b
}

// A default ACL above the destination is not inherited by the copy: it
// has the source's attributes and no more.
func TestCopyTreeDropsInheritedACLs(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root: the tree holds other users' files, a device and trusted.* attributes")
	}
	src := filepath.Join(t.TempDir(), "src")
	everyKind(t, src)
	parent := t.TempDir()
	const none = 0xffffffff
	def := aclXattr([3]uint32{0x01, 7, none}, [3]uint32{0x02, 7, 1000}, [3]uint32{0x04, 5, none}, [3]uint32{0x10, 7, none}, [3]uint32{0x20, 5, none})
	if err := unix.Setxattr(parent, "system.posix_acl_default", def, 0); err != nil {
		t.Skipf("the temp dir's file system takes no default ACL: %v", err)
	}
	dst := filepath.Join(parent, "dst")
	if err := fsutil.CopyTree(src, dst, nil); err != nil {
		t.Fatal(err)
	}
	if want, got := testbase.ExactDigest(t, src), testbase.ExactDigest(t, dst); got != want {
		t.Fatalf("copy under a default ACL differs:\n%s", lineDiff(want, got))
	}
}

// The helper process of TestCopyTreeWithoutPrivilege: it copies as the
// uid it was started as.
func TestCopyTreeHelper(t *testing.T) {
	src, dst := os.Getenv("COPY_SRC"), os.Getenv("COPY_DST")
	if src == "" {
		t.Skip("only run by TestCopyTreeWithoutPrivilege")
	}
	if err := fsutil.CopyTree(src, dst, nil); err != nil {
		t.Fatal(err)
	}
}

// An ordinary user cannot give the copy another owner, so it keeps none
// of the source's set-id bits: a set-uid file of root's must not become
// a set-uid file of the user's.
func TestCopyTreeWithoutPrivilege(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root, to make the source and run the copy as uid 65534")
	}
	dir, err := os.MkdirTemp("", "copy-unpriv-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	if err := os.Chmod(dir, 0o777); err != nil {
		t.Fatal(err)
	}
	src := filepath.Join(dir, "src")
	if err := os.MkdirAll(filepath.Join(src, "sgid-dir"), 0o755); err != nil {
		t.Fatal(err)
	}
	for p, mode := range map[string]os.FileMode{"suid": 0o755 | os.ModeSetuid | os.ModeSetgid, "sgid-dir": 0o755 | os.ModeDir | os.ModeSetgid, "mine": 0o755 | os.ModeSetuid} {
		p = filepath.Join(src, p)
		if mode.IsRegular() || mode&os.ModeDir == 0 {
			if err := os.WriteFile(p, []byte("x"), 0o755); err != nil {
				t.Fatal(err)
			}
		}
		if err := os.Chmod(p, mode); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Chown(filepath.Join(src, "mine"), 65534, 65534); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(filepath.Join(src, "mine"), 0o755|os.ModeSetuid); err != nil {
		t.Fatal(err)
	}
	dst := filepath.Join(dir, "dst")
	self, err := os.ReadFile("/proc/self/exe") // the go test build dir is root's alone
	if err != nil {
		t.Fatal(err)
	}
	helper := filepath.Join(dir, "fsutil.test")
	if err := os.WriteFile(helper, self, 0o755); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(helper, "-test.run=^TestCopyTreeHelper$", "-test.v")
	cmd.Env = append(os.Environ(), "COPY_SRC="+src, "COPY_DST="+dst)
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: 65534, Gid: 65534}}
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("copy as uid 65534: %v\n%s", err, out)
	}
	for name, want := range map[string]string{"suid": "-rwxr-xr-x", "sgid-dir": "drwxr-xr-x", "mine": "urwxr-xr-x"} {
		fi, err := os.Lstat(filepath.Join(dst, name))
		if err != nil {
			t.Fatal(err)
		}
		if got := fi.Mode().String(); got != want {
			t.Errorf("%s copied as uid 65534 has mode %s, want %s", name, got, want)
		}
	}
}
