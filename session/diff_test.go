package session

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/incarnate-dev/incarnate/sandbox"
)

// prefixes are the two xattr namespaces a session's overlay may use; the
// trusted one can only be written (and read) by root.
func prefixes(t *testing.T) []string {
	if os.Geteuid() != 0 {
		t.Log("not root: trusted.overlay.* markers cannot be written; testing user.overlay.* only")
		return []string{userPrefix}
	}
	return []string{trustedPrefix, userPrefix}
}

// mktree builds a tree under root from lines "KIND PATH":
//
//	d  a directory (0755)      f  a file ("x")
//	w  a whiteout (0/0 dev)    o  an opaque directory
//	x  a directory holding xattr whiteouts (opaque="x")
//	X  an xattr whiteout: an empty file with overlay.whiteout
func mktree(t *testing.T, root, prefix string, lines ...string) {
	t.Helper()
	if err := os.MkdirAll(root, 0o755); err != nil {
		t.Fatal(err)
	}
	os.Chmod(root, 0o755)
	for _, line := range lines {
		kind, rel, _ := strings.Cut(line, " ")
		p := filepath.Join(root, rel)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		var err error
		switch kind {
		case "d", "o", "x":
			err = os.Mkdir(p, 0o755)
			if err == nil && kind != "d" {
				err = unix.Setxattr(p, prefix+"opaque", []byte(map[string]string{"o": "y", "x": "x"}[kind]), 0)
			}
		case "f":
			err = os.WriteFile(p, []byte("x"), 0o644)
		case "X":
			err = os.WriteFile(p, nil, 0o644)
			if err == nil {
				err = unix.Setxattr(p, prefix+"whiteout", nil, 0)
			}
		case "w":
			err = unix.Mknod(p, unix.S_IFCHR, 0)
			if errors.Is(err, unix.EPERM) {
				t.Skipf("mknod of a whiteout %q: %v (this kernel wants CAP_MKNOD for it before 5.8)", p, err)
			}
		default:
			t.Fatalf("mktree: bad line %q", line)
		}
		if err != nil {
			t.Fatalf("mktree %q: %v", line, err)
		}
	}
}

// layeredTree is an upper dir over two lower dirs that exercise every
// rule: whiteouts and opaque dirs in the upper, and in the top lower too
// (a committed layer), xattr whiteouts, type changes, a copied-up parent
// whose only difference is its mtime.
func layeredTree(t *testing.T, prefix string) (upper string, lowers []string) {
	dir := t.TempDir()
	upper, top, bottom := filepath.Join(dir, "upper"), filepath.Join(dir, "top"), filepath.Join(dir, "bottom")
	mktree(t, bottom, prefix,
		"f etc/group", "f etc/os-release", "f etc/passwd", "f home/old", "f opt/a",
		"f bin/sh", "d var", "f usr/lib/os-release", "f srv/gone", "f srv/kept")
	mktree(t, top, prefix,
		"d etc", "w etc/passwd", "o opt", "f opt/b", "x srv", "X srv/gone", "d mnt")
	mktree(t, upper, prefix,
		"d etc", "f etc/os-release", "w etc/group", "f etc/passwd", "w etc/hosts",
		"o home", "f home/new",
		"d opt", "f opt/a", "f opt/b",
		"d srv", "f srv/gone", "f srv/kept",
		"d bin", "d bin/sh",
		"d var", "f usr/lib/new",
		"f new/dir/file", "f a/x", "f a-b")
	old := time.Unix(1e9, 0)
	if err := os.Chtimes(filepath.Join(bottom, "etc"), old, old); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(filepath.Join(upper, "var"), 0o700); err != nil {
		t.Fatal(err)
	}
	return upper, []string{top, bottom}
}

func TestDiffUpper(t *testing.T) {
	want := []Change{
		{"/a", Added}, {"/a/x", Added}, {"/a-b", Added}, // a directory before what it holds
		{"/bin/sh", Replaced},   // a directory where a file was
		{"/etc/group", Deleted}, // etc itself: copied up, only its mtime moved
		{"/etc/os-release", Modified},
		{"/etc/passwd", Added}, // the top layer's whiteout had deleted it
		{"/home", Replaced}, {"/home/new", Added},
		{"/new", Added}, {"/new/dir", Added}, {"/new/dir/file", Added},
		{"/opt/a", Added}, // the top layer's opaque opt hides the bottom's a
		{"/opt/b", Modified},
		{"/srv/gone", Added},    // an xattr whiteout in the top layer deleted it
		{"/srv/kept", Modified}, // (one that did not)
		{"/usr/lib/new", Added},
		{"/var", Modified}, // chmod 700
	}
	for _, prefix := range prefixes(t) {
		t.Run(strings.TrimSuffix(prefix, "."), func(t *testing.T) {
			upper, lowers := layeredTree(t, prefix)
			got, err := DiffUpper(upper, lowers, prefix)
			if err != nil {
				t.Fatal(err)
			}
			if !slices.Equal(got, want) {
				t.Errorf("DiffUpper:\ngot  %v\nwant %v", got, want)
			}
		})
	}
}

// Markers of the other namespace mean nothing: a root mount ignores
// user.overlay.opaque and the other way round, and so does the diff.
func TestDiffUpperIgnoresOtherNamespace(t *testing.T) {
	dir := t.TempDir()
	mktree(t, filepath.Join(dir, "lower"), userPrefix, "f home/old")
	mktree(t, filepath.Join(dir, "upper"), userPrefix, "o home", "f home/new")
	got, err := DiffUpper(filepath.Join(dir, "upper"), []string{filepath.Join(dir, "lower")}, trustedPrefix)
	if err != nil {
		t.Fatal(err)
	}
	if want := []Change{{"/home/new", Added}}; !slices.Equal(got, want) {
		t.Errorf("got %v, want %v", got, want)
	}
}

func TestDiffUpperRootAndEmpty(t *testing.T) {
	tests := []struct {
		name      string
		upperMode os.FileMode
		want      []Change
	}{
		{"nothing changed", 0o755, nil},
		{"chmod of /", 0o700, []Change{{"/", Modified}}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			mktree(t, filepath.Join(dir, "lower"), userPrefix, "f etc/passwd")
			mktree(t, filepath.Join(dir, "upper"), userPrefix)
			if err := os.Chmod(filepath.Join(dir, "upper"), tc.upperMode); err != nil {
				t.Fatal(err)
			}
			got, err := DiffUpper(filepath.Join(dir, "upper"), []string{filepath.Join(dir, "lower")}, userPrefix)
			if err != nil || !slices.Equal(got, tc.want) {
				t.Errorf("got %v, %v; want %v", got, err, tc.want)
			}
		})
	}
}

func TestDiffUpperNamesTheFailingPath(t *testing.T) {
	dir := t.TempDir()
	_, err := DiffUpper(filepath.Join(dir, "no-upper"), nil, userPrefix)
	if err == nil || !strings.Contains(err.Error(), filepath.Join(dir, "no-upper")) {
		t.Errorf("got %v, want an error naming the missing upper dir", err)
	}
}

// The host base shows what is mounted below "/" (a /home partition, a
// tmpfs): the session's root has an overlay on each submount. So the diff
// reads a lower dir with its submounts too: a file on a tmpfs mounted in
// it is a file of the layer, and the session's copy of it modifies it.
func TestDiffUpperSeesSubmounts(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root: mounts a tmpfs in a private mount namespace")
	}
	dir := t.TempDir()
	lower, upper := filepath.Join(dir, "lower"), filepath.Join(dir, "upper")
	mktree(t, lower, trustedPrefix, "d tmp")
	mktree(t, upper, trustedPrefix, "f tmp/f")
	got, err := inPrivateMountNS(func() ([]Change, error) {
		if err := unix.Mount("tmpfs", filepath.Join(lower, "tmp"), "tmpfs", 0, "mode=0755"); err != nil {
			return nil, err
		}
		if err := os.WriteFile(filepath.Join(lower, "tmp", "f"), nil, 0o644); err != nil {
			return nil, err
		}
		return DiffUpper(upper, []string{lower}, trustedPrefix)
	})
	if err != nil {
		t.Fatal(err)
	}
	if want := []Change{{"/tmp/f", Modified}}; !slices.Equal(got, want) {
		t.Errorf("got %v, want %v: the file on the submount is part of the layer", got, want)
	}
}

// inPrivateMountNS runs fn on a thread of its own in a new mount
// namespace; the thread is thrown away after, and its mounts with it.
func inPrivateMountNS(fn func() ([]Change, error)) ([]Change, error) {
	type result struct {
		c   []Change
		err error
	}
	done := make(chan result)
	go func() {
		runtime.LockOSThread() // never unlocked: the thread dies with the goroutine
		if err := unix.Unshare(unix.CLONE_NEWNS); err != nil {
			done <- result{nil, err}
			return
		}
		if err := unix.Mount("", "/", "", unix.MS_REC|unix.MS_PRIVATE, ""); err != nil {
			done <- result{nil, err}
			return
		}
		c, err := fn()
		done <- result{c, err}
	}()
	r := <-done
	return r.c, r.err
}

// A big upper dir has the names of the dirs below it read once instead of
// each entry looked up (listNames); both ways must agree.
func TestDiffUpperSmallAndBigDirs(t *testing.T) {
	for _, n := range []int{10, manyEntries, 3 * manyEntries} {
		t.Run(fmt.Sprint(n), func(t *testing.T) {
			dir := t.TempDir()
			var bottom, up []string
			var want []Change
			for i := 0; i < n; i++ {
				name := fmt.Sprintf("etc/f%03d", i)
				up = append(up, "f "+name)
				switch {
				case i == 1: // deleted by the top layer
					bottom = append(bottom, "f "+name)
					want = append(want, Change{"/" + name, Added})
				case i%2 == 0:
					bottom = append(bottom, "f "+name)
					want = append(want, Change{"/" + name, Modified})
				default:
					want = append(want, Change{"/" + name, Added})
				}
			}
			mktree(t, filepath.Join(dir, "bottom"), userPrefix, append(bottom, "f etc/gone")...)
			mktree(t, filepath.Join(dir, "top"), userPrefix, "w etc/f001")
			mktree(t, filepath.Join(dir, "upper"), userPrefix, append(up, "w etc/gone")...)
			want = append(want, Change{"/etc/gone", Deleted})
			got, err := DiffUpper(filepath.Join(dir, "upper"), []string{filepath.Join(dir, "top"), filepath.Join(dir, "bottom")}, userPrefix)
			if err != nil {
				t.Fatal(err)
			}
			if !slices.Equal(got, want) {
				t.Errorf("DiffUpper:\ngot  %v\nwant %v", got, want)
			}
		})
	}
}

// The state a session's `mv a a.d; ln -s /elsewhere a` leaves while the
// diff is at /a/m: whether m was made only to mount on, or is a stub of
// incarnate's, was asked of the path upper/a/m, which by then leads to
// another directory, whose m carries the marks. The session's own m
// was left out of the diff (and so of an export). Asked of the entry
// the walk holds, it is there.
func TestDiffAsksNoSwappedPath(t *testing.T) {
	for _, tt := range []struct {
		mark string
		f    format
		kind Kind
	}{
		{sandbox.MountpointXattr, format{prefix: userPrefix}, Added},
		{stubXattr, format{prefix: fusePrefix, fuse: true, stubs: map[string]bool{"/a/m": true}}, Modified},
	} {
		t.Run(tt.mark, func(t *testing.T) {
			dir := t.TempDir()
			upper, lower, decoy := filepath.Join(dir, "upper"), filepath.Join(dir, "lower"), filepath.Join(dir, "decoy")
			mktree(t, upper, tt.f.prefix, "d a", "f a/m")
			mktree(t, decoy, tt.f.prefix, "f a/m")
			var lowers []string
			if tt.kind == Modified {
				mktree(t, lower, tt.f.prefix, "d a", "f a/m")
				lowers = []string{lower}
			}
			// Decoy's m looks like what incarnate made: marked, empty,
			// and (for a stub) the lower one's mode and time.
			m := filepath.Join(decoy, "a", "m")
			if err := os.Truncate(m, 0); err != nil {
				t.Fatal(err)
			}
			if err := unix.Setxattr(m, tt.mark, []byte("1"), 0); err != nil {
				t.Skipf("user xattrs: %v", err)
			}
			if tt.kind == Modified {
				var st unix.Stat_t
				if err := unix.Lstat(filepath.Join(lower, "a", "m"), &st); err != nil {
					t.Fatal(err)
				}
				if err := unix.UtimesNano(m, []unix.Timespec{st.Atim, st.Mtim}); err != nil {
					t.Fatal(err)
				}
			}
			testHookDiffEntry = func(p string) {
				if p != "/a/m" {
					return
				}
				a := filepath.Join(upper, "a")
				if err := os.Rename(a, a+".d"); err != nil {
					t.Error(err)
				}
				if err := os.Symlink(filepath.Join(decoy, "a"), a); err != nil {
					t.Error(err)
				}
			}
			defer func() { testHookDiffEntry = nil }()
			changes, err := diffUpper(upper, lowers, tt.f, map[string]bool{"/a/m": true})
			if err != nil {
				t.Fatal(err)
			}
			if !slices.Contains(changes, Change{Path: "/a/m", Kind: tt.kind}) {
				t.Errorf("diff with a swapped in path: %v; want /a/m %v", changes, tt.kind)
			}
		})
	}
}
