package fsutil

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// The states a session's `mv a a.d; ln -s /host a` leaves while its
// upper dir is copied (clone, commit): the copier has listed a, and a is
// by now a symlink to a host directory, just before it looks at a file
// of a or at a directory of a it will enter. The copy must hold the
// session's own files, or fail, and never the host's (the cli's race
// test runs the swap for real).
func TestCopyFollowsNoSwappedSymlink(t *testing.T) {
	for _, at := range []string{"a/shadow", "a/b/secret"} {
		t.Run(at, func(t *testing.T) {
			host, src := t.TempDir(), t.TempDir()
			for dir, content := range map[string]string{host: "host secret\n", filepath.Join(src, "a"): "session's own\n"} {
				f := filepath.Join(dir, strings.TrimPrefix(at, "a/"))
				if err := os.MkdirAll(filepath.Dir(f), 0o755); err != nil {
					t.Fatal(err)
				}
				if err := os.WriteFile(f, []byte(content), 0o600); err != nil {
					t.Fatal(err)
				}
			}
			at := strings.TrimSuffix(at, "/secret") // the directory it enters
			testHookEntry = func(rel string) {
				if rel != at {
					return
				}
				a := filepath.Join(src, "a")
				if err := os.Rename(a, a+".d"); err != nil {
					t.Error(err)
				}
				if err := os.Symlink(host, a); err != nil {
					t.Error(err)
				}
			}
			defer func() { testHookEntry = nil }()
			dst := filepath.Join(t.TempDir(), "copy")
			err := CopyTree(src, dst, nil)
			_ = filepath.Walk(dst, func(p string, fi os.FileInfo, werr error) error {
				if werr == nil && fi.Mode().IsRegular() {
					if b, _ := os.ReadFile(p); strings.Contains(string(b), "host secret") {
						t.Errorf("the copy holds the host's %s at %s", filepath.Base(p), strings.TrimPrefix(p, dst))
					}
				}
				return nil
			})
			t.Logf("copy: %v", err)
		})
	}
}
