package cli

import (
	"archive/tar"
	"bytes"
	"crypto/md5"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/incarnate-dev/incarnate/internal/fsutil"
	"github.com/incarnate-dev/incarnate/internal/testbase"
)

// diffScript makes one change of each kind in a session on diffBase.
const diffScript = `
echo new > /root/added
echo changed >> /etc/os-release
rm /etc/group
rm -rf /srv/old && mkdir /srv/old && echo fresh > /srv/old/c
`

const diffWant = `D /etc/group
M /etc/os-release
A /root/added
R /srv/old/
A /srv/old/c
`

// diffBase imports base "bb2": busybox plus a directory with content, so
// that replacing it has something to hide. It returns the source dir.
func diffBase(t *testing.T, h *harness) string {
	t.Helper()
	old := filepath.Join(h.base, "srv", "old")
	if err := os.MkdirAll(old, 0o755); err != nil {
		t.Fatal(err)
	}
	for _, f := range []string{"a", "b"} {
		if err := os.WriteFile(filepath.Join(old, f), []byte(f+"\n"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	h.ok("base", "import", "bb2", h.base)
	return h.base
}

// userDir is a directory the harness's user may write to.
func userDir(t *testing.T, h *harness, name string) string {
	t.Helper()
	dir := filepath.Join(h.dir, name)
	if err := os.Mkdir(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Chown(dir, h.u.uid, h.u.gid); err != nil {
		t.Fatal(err)
	}
	return dir
}

func TestDiffExportCommit(t *testing.T) {
	forEachUser(t, func(t *testing.T, h *harness) {
		src := diffBase(t, h)
		h.ok("new", "--base", "bb2", "s")
		if out := h.ok("diff", "s"); out != "no changes in s\n" {
			t.Errorf("diff of a fresh session: %q", out)
		}
		h.ok("run", "s", "--", "sh", "-c", diffScript)
		if got := h.ok("diff", "s"); got != diffWant {
			t.Errorf("diff s:\ngot\n%s\nwant\n%s", got, diffWant)
		}
		checkDiffJSON(t, h)
		checkExport(t, h, src)
		checkCommit(t, h)
	})
}

func checkDiffJSON(t *testing.T, h *harness) {
	t.Helper()
	var got []struct{ Path, Kind string }
	if err := json.Unmarshal([]byte(h.ok("diff", "--json", "s")), &got); err != nil {
		t.Fatalf("diff --json: %v", err)
	}
	want := []struct{ Path, Kind string }{
		{"/etc/group", "deleted"}, {"/etc/os-release", "modified"}, {"/root/added", "added"},
		{"/srv/old", "replaced"}, {"/srv/old/c", "added"},
	}
	if !slices.Equal(got, want) {
		t.Errorf("diff --json:\ngot  %v\nwant %v", got, want)
	}
}

// checkExport exports session s, checks the tarball's entries, applies
// it to a copy of the base and compares that with what the session sees.
func checkExport(t *testing.T, h *harness, src string) {
	t.Helper()
	tarball := filepath.Join(userDir(t, h, "out"), "s.tar")
	if out := h.ok("export", "s", tarball); out != "exported 5 changes of session s to "+tarball+"\n" {
		t.Errorf("export says %q", out)
	}
	data, err := os.ReadFile(tarball)
	if err != nil {
		t.Fatal(err)
	}
	if stdout := h.ok("export", "s", "-"); stdout != string(data) {
		t.Errorf("export to stdout (%d bytes) differs from export to a file (%d bytes)", len(stdout), len(data))
	}
	names := tarNames(t, data)
	want := []string{"etc/.wh.group", "etc/os-release", "root/added", "srv/old/", "srv/old/.wh..wh..opq", "srv/old/c"}
	if !slices.Equal(names, want) {
		t.Errorf("tarball entries:\ngot  %q\nwant %q", names, want)
	}
	applied := filepath.Join(h.dir, "applied")
	if err := fsutil.CopyTree(src, applied, nil); err != nil {
		t.Fatal(err)
	}
	applyLayer(t, applied, bytes.NewReader(data))
	inside := h.ok("run", "s", "--", "sh", "-c", viewScript)
	if outside := view(t, applied); inside != outside {
		t.Errorf("the base with the tarball applied differs from the session:\ninside\n%s\noutside\n%s", inside, outside)
	}
}

// viewScript lists, inside a session, every path of the trees the tests
// change with its mode and, for files, an md5 of the content; view does
// the same outside. The host's resolv.conf and hosts are bound over the
// base's, so they are left out.
const viewScript = `cd / && find bin etc home root srv | sort | while read -r p; do
	case $p in etc/hosts|etc/resolv.conf) continue;; esac
	stat -c '%n %f' "$p"
	[ -f "$p" ] && [ ! -L "$p" ] && md5sum "$p"
done; true`

func view(t *testing.T, root string) string {
	t.Helper()
	var paths []string
	for _, top := range []string{"bin", "etc", "home", "root", "srv"} {
		err := filepath.WalkDir(filepath.Join(root, top), func(p string, _ os.DirEntry, err error) error {
			rel, _ := filepath.Rel(root, p)
			paths = append(paths, rel)
			return err
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	sort.Strings(paths)
	var b strings.Builder
	for _, p := range paths {
		if p == "etc/hosts" || p == "etc/resolv.conf" {
			continue
		}
		var st unix.Stat_t
		if err := unix.Lstat(filepath.Join(root, p), &st); err != nil {
			t.Fatal(err)
		}
		fmt.Fprintf(&b, "%s %x\n", p, st.Mode)
		if st.Mode&unix.S_IFMT == unix.S_IFREG {
			body, err := os.ReadFile(filepath.Join(root, p))
			if err != nil {
				t.Fatal(err)
			}
			fmt.Fprintf(&b, "%x  %s\n", md5.Sum(body), p)
		}
	}
	return b.String()
}

func tarNames(t *testing.T, data []byte) []string {
	t.Helper()
	var names []string
	tr := tar.NewReader(bytes.NewReader(data))
	for {
		hdr, err := tr.Next()
		if err == io.EOF {
			return names
		}
		if err != nil {
			t.Fatal(err)
		}
		names = append(names, hdr.Name)
	}
}

// applyLayer applies an OCI layer tarball to dst the way an image tool
// does: ".wh.NAME" deletes NAME, ".wh..wh..opq" empties its directory of
// what was there before (incarnate writes it right after the directory,
// before the directory's new content), and any other entry replaces what
// is at its path.
func applyLayer(t *testing.T, dst string, r io.Reader) {
	t.Helper()
	tr := tar.NewReader(r)
	for {
		hdr, err := tr.Next()
		if err == io.EOF {
			return
		}
		if err != nil {
			t.Fatal(err)
		}
		if err := applyEntry(dst, hdr, tr); err != nil {
			t.Fatalf("apply %q: %v", hdr.Name, err)
		}
	}
}

func applyEntry(dst string, hdr *tar.Header, body io.Reader) error {
	p := filepath.Join(dst, filepath.Clean("/"+hdr.Name))
	dir, base := filepath.Split(p)
	switch {
	case base == ".wh..wh..opq":
		ents, err := os.ReadDir(dir)
		for _, e := range ents {
			err = errors.Join(err, os.RemoveAll(filepath.Join(dir, e.Name())))
		}
		return err
	case strings.HasPrefix(base, ".wh."):
		return os.RemoveAll(filepath.Join(dir, strings.TrimPrefix(base, ".wh.")))
	}
	if fi, err := os.Lstat(p); err == nil && !(fi.IsDir() && hdr.Typeflag == tar.TypeDir) {
		if err := os.RemoveAll(p); err != nil {
			return err
		}
	}
	var err error
	switch hdr.Typeflag {
	case tar.TypeDir:
		err = os.MkdirAll(p, 0o755)
	case tar.TypeReg:
		var f *os.File
		if f, err = os.Create(p); err == nil {
			_, err = io.Copy(f, body)
			err = errors.Join(err, f.Close())
		}
	case tar.TypeSymlink:
		return os.Symlink(hdr.Linkname, p)
	case tar.TypeLink:
		return os.Link(filepath.Join(dst, hdr.Linkname), p)
	default:
		return fmt.Errorf("unexpected type %c", hdr.Typeflag)
	}
	if err != nil {
		return err
	}
	return errors.Join(unix.Chmod(p, uint32(hdr.Mode&0o7777)), os.Lchown(p, hdr.Uid, hdr.Gid))
}

// checkCommit freezes session s into base b2 and starts a session on it.
func checkCommit(t *testing.T, h *harness) {
	t.Helper()
	h.ok("commit", "s", "b2")
	if out := h.ok("base", "ls"); !regexpLineName(out, "b2") || !strings.Contains(out, "session:s") {
		t.Errorf("base ls after commit:\n%s", out)
	}
	h.ok("new", "--base", "b2", "t")
	got := h.ok("run", "t", "--", "sh", "-c", "cat /root/added; ls /srv/old; [ -e /etc/group ] || echo no-group; tail -n 1 /etc/os-release")
	if want := "new\nc\nno-group\nchanged\n"; got != want {
		t.Errorf("a session on the committed base sees %q, want %q", got, want)
	}
	if out := h.ok("diff", "t"); out != "no changes in t\n" {
		t.Errorf("diff of a fresh session on the committed base: %q", out)
	}
	// What t writes over the committed layer's whiteout is new again.
	h.ok("run", "t", "--", "sh", "-c", "echo again > /etc/group")
	if out := h.ok("diff", "t"); out != "A /etc/group\n" {
		t.Errorf("diff t after recreating /etc/group: %q", out)
	}
	if got := h.ok("diff", "s"); got != diffWant {
		t.Errorf("the committed session changed: diff s\n%s", got)
	}
	if out := h.ok("run", "s", "--", "cat", "/root/added"); out != "new\n" {
		t.Errorf("the committed session shows %q", out)
	}
}

func TestCommitRefusals(t *testing.T) {
	forEachUser(t, func(t *testing.T, h *harness) {
		h.ok("new", "--base", "bb", "s")
		h.ok("run", "s", "--", "sh", "-c", "echo x > /root/x")
		h.ok("commit", "s", "taken")
		h.ok("new", "--base", "bb", "empty")
		if out := h.ok("ls", "--json"); !strings.Contains(out, `"last_entered": null`) {
			t.Errorf("ls --json gives a never-entered session a time:\n%s", out)
		}
		layersBefore := testbase.DirNames(t, filepath.Join(h.store, "layers"))
		tests := []struct {
			args   []string
			status int
			want   string
		}{
			{[]string{"commit", "s", "taken"}, 1, `base "taken": already exists`},
			{[]string{"commit", "s", "host"}, 1, "already exists"},
			{[]string{"commit", "s", "bad/name"}, 2, "letters, digits"},
			{[]string{"commit", "nosuch", "b9"}, 1, "does not exist"},
			{[]string{"commit", "s"}, 2, "usage"},
			{[]string{"commit", "empty", "b8"}, 1, "no changes to commit"},
		}
		for _, tc := range tests {
			_, errOut, status := h.run(tc.args...)
			if status != tc.status || !strings.Contains(errOut, tc.want) {
				t.Errorf("incarnate %v: status %d, stderr %q; want %d and %q", tc.args, status, errOut, tc.status, tc.want)
			}
		}
		if got := testbase.DirNames(t, filepath.Join(h.store, "layers")); !slices.Equal(got, layersBefore) {
			t.Errorf("refused commits changed layers/: %v, was %v", got, layersBefore)
		}

		bg := h.command("run", "s", "--", "sleep", "100")
		if err := bg.Start(); err != nil {
			t.Fatal(err)
		}
		defer func() { _ = bg.Process.Kill(); _ = bg.Wait() }()
		waitFor(t, "the sleep to run", func() bool { return regexpLine(h.ok("ls"), "s", "1") })
		if out := h.ok("ls"); !strings.Contains(out, " ~") || !strings.Contains(out, "~ as last measured") {
			t.Errorf("ls does not mark the figures of a running session as last measured:\n%s", out)
		}
		_, errOut, status := h.run("commit", "s", "busy")
		if status == 0 || !strings.Contains(errOut, "in use") {
			t.Errorf("commit of a session in use: status %d, stderr %q; want a refusal", status, errOut)
		}
		if regexpLineName(h.ok("base", "ls"), "busy") {
			t.Errorf("a refused commit made its base")
		}
		_ = bg.Process.Kill()
		_ = bg.Wait()
		waitFor(t, "the session to be free", func() bool { return sessionFree(h, "s") })
	})
}

// A commit killed after copying, before recording the base, leaves no
// base and no layer (its workspace in tmp/ is cleared at the next start),
// and running it again works.
func TestCommitKilledLeavesNoBase(t *testing.T) {
	forEachUser(t, func(t *testing.T, h *harness) {
		h.ok("new", "--base", "bb", "s")
		h.ok("run", "s", "--", "sh", "-c", "echo x > /root/x; rm /etc/group")
		layersBefore := testbase.DirNames(t, filepath.Join(h.store, "layers"))
		cmd := h.command("commit", "s", "b2")
		cmd.Env = append(cmd.Env, "INCARNATE_FAULT=commit-copied")
		var stderr bytes.Buffer
		cmd.Stderr = &stderr
		err := cmd.Run()
		if ws, ok := cmd.ProcessState.Sys().(syscall.WaitStatus); !ok || !ws.Signaled() || ws.Signal() != syscall.SIGKILL {
			t.Fatalf("commit with fault commit-copied: %v (%s), want death by SIGKILL", err, stderr.String())
		}
		if regexpLineName(h.ok("base", "ls"), "b2") {
			t.Errorf("a killed commit left base b2")
		}
		if got := testbase.DirNames(t, filepath.Join(h.store, "layers")); !slices.Equal(got, layersBefore) {
			t.Errorf("a killed commit left layers/ %v, was %v", got, layersBefore)
		}
		h.ok("commit", "s", "b2")
		if got := testbase.DirNames(t, filepath.Join(h.store, "layers")); len(got) != len(layersBefore)+1 {
			t.Errorf("after the rerun layers/ holds %v", got)
		}
		if !emptyDir(filepath.Join(h.store, "tmp")) {
			t.Errorf("tmp/ keeps the killed commit's copy: %v", testbase.DirNames(t, filepath.Join(h.store, "tmp")))
		}
		h.ok("new", "--base", "b2", "t")
		if out := h.ok("run", "t", "--", "sh", "-c", "cat /root/x; [ -e /etc/group ] || echo no-group"); out != "x\nno-group\n" {
			t.Errorf("session on the rerun's base sees %q", out)
		}
	})
}

// On the host base, diff reads "/" as the overlay does. A host-base session commits with the store on the host's own root file
// system, the default, as root (where overlayfs would refuse the layer
// inside "/", so fuse-overlayfs serves the new base) and as a user.
func TestDiffAndCommitOnHostBase(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root, to run as root and as an ordinary user")
	}
	openFuse(t)
	forEachUser(t, func(t *testing.T, h *harness) {
		if !onRootFS(h.store) {
			// A tmpfs /tmp: the store moves to /var/tmp, where it is on
			// the root file system on most machines.
			dir, err := os.MkdirTemp("/var/tmp", "incarnate-test-store-")
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { _ = fsutil.RemoveTree(dir) })
			if err := os.Chown(dir, h.u.uid, h.u.gid); err != nil {
				t.Fatal(err)
			}
			if !onRootFS(dir) {
				t.Skip("neither the test's store nor /var/tmp is on the root file system here")
			}
			h.store = dir
		}
		h.ok("new", "h")
		name := fmt.Sprintf("/etc/incarnate-diff-%d", time.Now().UnixNano())
		h.ok("run", "h", "--", "sh", "-c", "echo x > "+name)
		if out := h.ok("diff", "h"); out != "A "+name+"\n" {
			t.Errorf("diff of a host session: %q", out)
		}
		h.ok("commit", "h", "hb")
		h.ok("new", "--base", "hb", "t")
		if out := h.ok("run", "t", "--", "sh", "-c", "cat "+name+"; echo y > /etc/second"); out != "x\n" {
			t.Errorf("session on the committed host base sees %q", out)
		}
		if out := h.ok("diff", "t"); out != "A /etc/second\n" {
			t.Errorf("diff of a session on the committed base: %q", out)
		}
		for _, f := range []string{name, "/etc/second"} {
			if _, err := os.Lstat(f); err == nil {
				t.Errorf("host %s exists", f)
			}
		}
	})
}

// BenchmarkDiff times `incarnate diff` of a session with 20,000 changed
// files, half in new directories and half in one the base has (each of
// those looked up below), against `find UPPER | wc -l`.
func BenchmarkDiff(b *testing.B) {
	s := newBench(b)
	upper := filepath.Join(s.h.store, "sessions", "bench", "upper")
	for d := 0; d < 100; d++ {
		dir := filepath.Join(upper, "srv", fmt.Sprintf("d%03d", d))
		if err := os.MkdirAll(dir, 0o755); err != nil {
			b.Fatal(err)
		}
		for f := 0; f < 100; f++ {
			if err := os.WriteFile(filepath.Join(dir, fmt.Sprintf("f%03d", f)), nil, 0o644); err != nil {
				b.Fatal(err)
			}
		}
	}
	if err := os.MkdirAll(filepath.Join(upper, "etc"), 0o755); err != nil {
		b.Fatal(err)
	}
	for f := 0; f < 10000; f++ {
		if err := os.WriteFile(filepath.Join(upper, "etc", fmt.Sprintf("conf%05d", f)), nil, 0o644); err != nil {
			b.Fatal(err)
		}
	}
	diff := variant{"diff", timed(func() *exec.Cmd { return s.h.command("diff", "bench") })}
	find := variant{"find", timed(func() *exec.Cmd { return exec.Command("sh", "-c", "find "+upper+" | wc -l") })}
	measure(b, diff, &find)
}

// What the sandbox makes only to mount on (a --bind target, /proc on a
// base without one) is in the upper dir, but no change of the session's:
// diff, export and commit leave it out.
func TestMountPointsAreNoChanges(t *testing.T) {
	forEachUser(t, func(t *testing.T, h *harness) {
		src := filepath.Join(h.dir, "shared")
		if err := os.MkdirAll(src, 0o755); err != nil {
			t.Fatal(err)
		}
		h.ok("new", "--base", "bb", "--bind", src+":/src/inner", "s")
		h.ok("run", "s", "--", "sh", "-c", "echo x > /root/x")
		upper := filepath.Join(h.store, "sessions", "s", "upper")
		if _, err := os.Lstat(filepath.Join(upper, "src", "inner")); err != nil {
			t.Fatalf("the bind target is not in the upper dir, so the test shows nothing: %v", err)
		}
		if out := h.ok("diff", "s"); out != "A /root/x\n" {
			t.Errorf("diff s: %q, want only the session's own file", out)
		}
		tarball := filepath.Join(src, "s.tar")
		if err := os.Chown(src, h.u.uid, h.u.gid); err != nil {
			t.Fatal(err)
		}
		h.ok("export", "s", tarball)
		data, err := os.ReadFile(tarball)
		if err != nil {
			t.Fatal(err)
		}
		if names := tarNames(t, data); !slices.Equal(names, []string{"root/x"}) {
			t.Errorf("export holds %v, want only root/x", names)
		}
		h.ok("commit", "s", "b2")
		h.ok("new", "--base", "b2", "t")
		if out := h.ok("run", "t", "--", "sh", "-c", "cat /root/x; ls -d /src 2>&1 | grep -c 'No such'"); out != "x\n1\n" {
			t.Errorf("a session on the committed base sees %q, want /root/x and no /src", out)
		}
	})
}

// diff takes paths, --stat counts, and -p shows each file's text against
// the base, with a session's control bytes made visible and a binary by
// size and hash.
func TestDiffPathsStatPatch(t *testing.T) {
	forEachUser(t, func(t *testing.T, h *harness) {
		h.ok("new", "--base", "bb", "s")
		h.ok("run", "s", "--", "sh", "-c", `echo extra >> /etc/os-release && printf 'a\033]52;c;x\007b\n' > /root/evil && head -c 3000 /dev/zero > /root/bin && echo keep > /root/keep`)
		if out := h.ok("diff", "s", "/etc"); out != "M /etc/os-release\n" {
			t.Errorf("diff s /etc: %q", out)
		}
		if _, _, status := h.run("diff", "s", "/nowhere"); status == 0 {
			t.Error("diff of a path that is not among the changes went through")
		}
		// On a terminal -p goes through $PAGER, as git's does.
		paged := h.command("diff", "-p", "s", "/etc/os-release")
		paged.Env = append(paged.Env, "PAGER=sed s/^/PAGED:/")
		if pty := h.onPty(t, 24, 100, paged); pty.exit() != 0 || !strings.Contains(pty.text(), "PAGED:+extra") {
			t.Errorf("diff -p on a terminal did not go through $PAGER:\n%q", pty.text())
		}
		broken := h.command("diff", "-p", "s", "/etc/os-release")
		broken.Env = append(broken.Env, "PAGER=no-such-pager")
		if pty := h.onPty(t, 24, 100, broken); pty.exit() == 0 && !strings.Contains(pty.text(), "+extra") {
			t.Errorf("diff -p with a pager that is not there lost the diff and exited 0:\n%q", pty.text())
		}
		if out := h.ok("diff", "--stat", "s"); out != "4 paths changed in s, 3 added, 1 modified\n" {
			t.Errorf("diff --stat: %q", out)
		}
		out := h.ok("diff", "-p", "s")
		for _, want := range []string{"--- a/etc/os-release\n+++ b/etc/os-release\n", "+extra\n", "--- /dev/null\n+++ b/root/keep\n", "+keep\n",
			"Binary /root/bin: none -> 2.9K", `+a\x1b]52;c;x\ab`} {
			if !strings.Contains(out, want) {
				t.Errorf("diff -p lacks %q:\n%s", want, out)
			}
		}
		if strings.ContainsAny(out, "\x1b\x07") {
			t.Errorf("diff -p passes control bytes through:\n%q", out)
		}
	})
}

// onRootFS reports whether dir is on the file system mounted at /.
func onRootFS(dir string) bool {
	var root, st unix.Stat_t
	return unix.Stat("/", &root) == nil && unix.Stat(dir, &st) == nil && root.Dev == st.Dev
}
