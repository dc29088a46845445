package fsutil_test

import (
	"errors"
	"os"
	"path/filepath"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/incarnate-dev/incarnate/internal/fsutil"
)

// treeWithBind makes root/{own,in/mnt} and binds victim (of the same
// file system, so with the same st_dev) on root/in/mnt, for the test.
func treeWithBind(t *testing.T) (root, victim string) {
	if os.Geteuid() != 0 {
		t.Skip("needs root, to mount")
	}
	dir := t.TempDir()
	root, victim = filepath.Join(dir, "root"), filepath.Join(dir, "victim")
	for _, d := range []string{filepath.Join(root, "in", "mnt"), victim} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	for _, f := range []string{filepath.Join(root, "own"), filepath.Join(victim, "precious")} {
		if err := os.WriteFile(f, []byte("x"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	mnt := filepath.Join(root, "in", "mnt")
	if err := unix.Mount(victim, mnt, "", unix.MS_BIND, ""); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = unix.Unmount(mnt, unix.MNT_DETACH) })
	return root, victim
}

// A walk measures or re-owns a tree: a bind mount inside it, even of
// the same file system, is not part of it, and is neither passed to the
// callback nor entered.
func TestWalkSkipsABindMount(t *testing.T) {
	root, _ := treeWithBind(t)
	var seen []string
	err := fsutil.Walk(root, func(_ int, name, _ string, _ *unix.Stat_t) error {
		seen = append(seen, name)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	for _, n := range seen {
		if n == "mnt" || n == "precious" {
			t.Errorf("the walk saw %q, on a bind mount: %v", n, seen)
		}
	}
	if len(seen) != 2 {
		t.Errorf("the walk saw %v, want own and in", seen)
	}
}

// RemoveTree deletes all it may around a bind mount of the same file
// system, and nothing in it.
func TestRemoveTreeLeavesABindMount(t *testing.T) {
	root, victim := treeWithBind(t)
	err := fsutil.RemoveTree(root)
	if !errors.Is(err, fsutil.ErrCrossesMount) {
		t.Errorf("RemoveTree over a bind mount: %v, want ErrCrossesMount", err)
	}
	if _, err := os.Stat(filepath.Join(victim, "precious")); err != nil {
		t.Errorf("the bound directory lost its file: %v", err)
	}
	if _, err := os.Lstat(filepath.Join(root, "own")); !os.IsNotExist(err) {
		t.Errorf("the file beside the mount stayed: %v", err)
	}
	// The mount itself as the tree's root is refused too.
	if err := fsutil.RemoveTree(filepath.Join(root, "in", "mnt")); !errors.Is(err, fsutil.ErrCrossesMount) {
		t.Errorf("RemoveTree of a mount point: %v, want ErrCrossesMount", err)
	}
	if _, err := os.Stat(filepath.Join(victim, "precious")); err != nil {
		t.Errorf("the bound directory lost its file: %v", err)
	}
}

// A copy (clone, commit) refuses a tree with a bind mount inside it
// rather than copy what is mounted there.
func TestCopyTreeRefusesABindMount(t *testing.T) {
	root, _ := treeWithBind(t)
	dst := filepath.Join(t.TempDir(), "copy")
	if err := fsutil.CopyTree(root, dst, nil); !errors.Is(err, fsutil.ErrCrossesMount) {
		t.Errorf("CopyTree over a bind mount: %v, want ErrCrossesMount", err)
	}
	if _, err := os.Lstat(filepath.Join(dst, "in", "mnt", "precious")); err == nil {
		t.Error("the copy holds the bound directory's file")
	}
}
