// Package testbase builds the small root filesystems the tests run in: a
// static busybox and its applets, nothing from the host's libraries, so a
// test proves the sandbox shows the base and not the host.
package testbase

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/incarnate-dev/incarnate/internal/fsutil"
)

// Busybox builds a minimal root in dir (created) and returns dir.
func Busybox(t testing.TB, dir string) string {
	t.Helper()
	bb, err := exec.LookPath("busybox")
	if err != nil {
		t.Fatalf("busybox not found: the sandbox tests need a static busybox (apt-get install busybox-static, as .ci/run does)")
	}
	out, err := exec.Command(bb, "--list").Output()
	if err != nil {
		t.Fatalf("busybox --list: %v", err)
	}
	for _, d := range []string{"bin", "etc", "tmp", "root", "proc", "sys", "dev", "home"} {
		if err := os.MkdirAll(filepath.Join(dir, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Chmod(filepath.Join(dir, "tmp"), os.ModeSticky|0o777); err != nil {
		t.Fatal(err)
	}
	data, err := os.ReadFile(bb)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "bin", "busybox"), data, 0o755); err != nil {
		t.Fatal(err)
	}
	for _, applet := range strings.Fields(string(out)) {
		if applet == "busybox" {
			continue
		}
		if err := os.Symlink("busybox", filepath.Join(dir, "bin", applet)); err != nil {
			t.Fatal(err)
		}
	}
	files := map[string]string{
		"etc/passwd":      "root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/:/bin/sh\n",
		"etc/group":       "root:x:0:\nnogroup:x:65534:\n",
		"etc/os-release":  "ID=incarnate-test\n",
		"etc/hosts":       "127.0.0.1 localhost\n",
		"etc/resolv.conf": "",
	}
	for name, body := range files {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

// SharedDir makes a fresh directory every uid can enter (t.TempDir's
// parents are private to the test's user), removed when the test ends.
func SharedDir(t testing.TB) string {
	t.Helper()
	dir, err := os.MkdirTemp("", "incarnate-test-")
	if err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	// RemoveTree, not RemoveAll: if a test leaked a mount in here, it
	// must be reported, not emptied.
	t.Cleanup(func() {
		if err := fsutil.RemoveTree(dir); err != nil {
			t.Errorf("clean up %s: %v", dir, err)
		}
	})
	return dir
}

// DirNames lists the names in dir, sorted (as os.ReadDir gives them).
func DirNames(t testing.TB, dir string) []string {
	t.Helper()
	ents, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, e := range ents {
		names = append(names, e.Name())
	}
	return names
}
