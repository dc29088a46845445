package session

import (
	"archive/tar"
	"bytes"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

func TestExportTar(t *testing.T) {
	dir := t.TempDir()
	lower, upper := filepath.Join(dir, "lower"), filepath.Join(dir, "upper")
	mktree(t, lower, userPrefix, "f etc/group", "f etc/os-release", "f home/old")
	mktree(t, upper, userPrefix, "d etc", "w etc/group", "f etc/os-release", "o home", "f home/new", "f bin/tool")
	if err := os.Symlink("tool", filepath.Join(upper, "bin", "alias")); err != nil {
		t.Fatal(err)
	}
	if err := os.Link(filepath.Join(upper, "bin", "tool"), filepath.Join(upper, "bin", "tool2")); err != nil {
		t.Fatal(err)
	}
	tool := filepath.Join(upper, "bin", "tool")
	for name, value := range map[string]string{"user.mime_type": "text/plain", userPrefix + "origin": "junk"} {
		if err := unix.Setxattr(tool, name, []byte(value), 0); err != nil {
			t.Fatal(err)
		}
	}
	if err := unix.Chmod(tool, 0o4755); err != nil {
		t.Fatal(err)
	}
	changes, err := DiffUpper(upper, []string{lower}, userPrefix)
	if err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	if err := ExportTar(&buf, upper, changes); err != nil {
		t.Fatal(err)
	}

	type entry struct {
		name string
		kind byte
		mode int64
		link string
		body string
	}
	var got []entry
	hdrs := map[string]*tar.Header{}
	tr := tar.NewReader(&buf)
	for {
		h, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(tr)
		got = append(got, entry{h.Name, h.Typeflag, h.Mode, h.Linkname, string(body)})
		hdrs[h.Name] = h
	}
	want := []entry{
		{"bin/", tar.TypeDir, 0o755, "", ""},
		{"bin/alias", tar.TypeSymlink, 0o777, "tool", ""},
		{"bin/tool", tar.TypeReg, 0o4755, "", "x"},
		{"bin/tool2", tar.TypeLink, 0o4755, "bin/tool", ""},
		{"etc/.wh.group", tar.TypeReg, 0, "", ""},
		{"etc/os-release", tar.TypeReg, 0o644, "", "x"},
		{"home/", tar.TypeDir, 0o755, "", ""},
		{"home/.wh..wh..opq", tar.TypeReg, 0, "", ""}, // right after its directory
		{"home/new", tar.TypeReg, 0o644, "", "x"},
	}
	if !slices.Equal(got, want) {
		t.Errorf("entries:\ngot  %v\nwant %v", got, want)
	}
	recs := hdrs["bin/tool"].PAXRecords
	if recs["SCHILY.xattr.user.mime_type"] != "text/plain" {
		t.Errorf("bin/tool's xattrs %v: want user.mime_type kept", recs)
	}
	for k := range recs {
		if strings.Contains(k, "overlay.") {
			t.Errorf("bin/tool carries overlay xattr %q into the tarball", k)
		}
	}
}

func TestWriteAtomic(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "out.tar")
	if err := os.WriteFile(file, []byte("old"), 0o644); err != nil {
		t.Fatal(err)
	}
	failing := func(w io.Writer) error {
		io.WriteString(w, "half")
		return io.ErrUnexpectedEOF
	}
	if err := writeAtomic(file, failing); err == nil {
		t.Fatal("a failing write reported success")
	}
	if b, _ := os.ReadFile(file); string(b) != "old" {
		t.Errorf("after a failed export the file holds %q, want the old content", b)
	}
	if err := writeAtomic(file, func(w io.Writer) error { _, err := io.WriteString(w, "new"); return err }); err != nil {
		t.Fatal(err)
	}
	if b, _ := os.ReadFile(file); string(b) != "new" {
		t.Errorf("file holds %q, want new", b)
	}
	if ents, _ := os.ReadDir(dir); len(ents) != 1 {
		t.Errorf("temp files left beside the export: %v", ents)
	}
	if err := writeAtomic(dir, failing); err == nil || !strings.Contains(err.Error(), "is a directory") {
		t.Errorf("export onto a directory: %v, want a refusal", err)
	}
}

// An export writes into what its path names: a symlink's target, a fifo
// (or /dev/stdout) as it is, a regular file replaced whole.
func TestWriteAtomicKeepsWhatThePathIs(t *testing.T) {
	dir := t.TempDir()
	p := func(name string) string { return filepath.Join(dir, name) }
	write := func(w io.Writer) error { _, err := io.WriteString(w, "tarball"); return err }
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	must(os.WriteFile(p("real.tar"), []byte("old"), 0o644))
	must(os.Symlink("real.tar", p("link.tar")))
	must(os.Symlink("later.tar", p("dangling.tar")))
	must(unix.Mkfifo(p("fifo"), 0o644))
	got := make(chan string)
	go func() {
		b, _ := os.ReadFile(p("fifo"))
		got <- string(b)
	}()
	for _, name := range []string{"new.tar", "link.tar", "dangling.tar", "fifo"} {
		if err := writeAtomic(p(name), write); err != nil {
			t.Fatalf("%s: %v", name, err)
		}
	}
	select {
	case s := <-got:
		if s != "tarball" {
			t.Errorf("the fifo's reader got %q", s)
		}
	case <-time.After(5 * time.Second):
		t.Error("nothing was written into the fifo")
	}
	for name, want := range map[string]string{"new.tar": "tarball", "real.tar": "tarball", "later.tar": "tarball"} {
		if b, err := os.ReadFile(p(name)); err != nil || string(b) != want {
			t.Errorf("%s holds %q, %v; want %q", name, b, err, want)
		}
	}
	for name, mode := range map[string]os.FileMode{"link.tar": os.ModeSymlink, "dangling.tar": os.ModeSymlink, "fifo": os.ModeNamedPipe} {
		if fi, err := os.Lstat(p(name)); err != nil || fi.Mode().Type() != mode {
			t.Errorf("%s is now %v, %v; want it left a %v", name, fi.Mode().Type(), err, mode)
		}
	}
	if err := writeAtomic(dir, write); err == nil || !strings.Contains(err.Error(), "is a directory") {
		t.Errorf("export onto a directory: %v", err)
	}
	if ents, _ := os.ReadDir(dir); len(ents) != 6 {
		t.Errorf("the directory holds %d entries, want 6 (no temp file left)", len(ents))
	}
}

// The state a session's swap leaves between diff and export: the change
// list names /a/shadow, but a is by now a symlink to a host directory.
// Export must read nothing through it (the race test in cli runs the
// swap for real).
func TestExportFollowsNoSwappedSymlink(t *testing.T) {
	host := t.TempDir()
	if err := os.WriteFile(filepath.Join(host, "shadow"), []byte("host secret\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	upper := t.TempDir()
	if err := os.Symlink(host, filepath.Join(upper, "a")); err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	err := ExportTar(&buf, upper, []Change{{Path: "/a/shadow", Kind: Added}})
	if strings.Contains(buf.String(), "host secret") {
		t.Fatalf("the tarball holds the host file behind the swapped symlink")
	}
	if err == nil {
		t.Errorf("export through a swapped symlink went ahead")
	}
}
