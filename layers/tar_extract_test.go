package layers

import (
	"archive/tar"
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// entry is one member of a tarball a test builds.
type entry struct {
	name, link, body string
	typ              byte
	mode             int64
	uid, gid         int
	major, minor     int64
	pax              map[string]string
}

func file(name, body string) entry {
	return entry{name: name, body: body, typ: tar.TypeReg, mode: 0o644}
}
func dir(name string) entry { return entry{name: name, typ: tar.TypeDir, mode: 0o755} }
func symlink(name, target string) entry {
	return entry{name: name, link: target, typ: tar.TypeSymlink, mode: 0o777}
}
func hardlink(name, target string) entry {
	return entry{name: name, link: target, typ: tar.TypeLink, mode: 0o644}
}

var testTime = time.Date(2021, 3, 4, 5, 6, 7, 0, time.UTC)

func makeTar(t testing.TB, entries ...entry) []byte {
	t.Helper()
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, e := range entries {
		hdr := &tar.Header{Name: e.name, Linkname: e.link, Typeflag: e.typ, Mode: e.mode, Uid: e.uid, Gid: e.gid,
			Size: int64(len(e.body)), ModTime: testTime, Devmajor: e.major, Devminor: e.minor, PAXRecords: e.pax, Format: tar.FormatPAX}
		if err := tw.WriteHeader(hdr); err != nil {
			t.Fatal(err)
		}
		if _, err := tw.Write([]byte(e.body)); err != nil {
			t.Fatal(err)
		}
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func TestEntryPath(t *testing.T) {
	tests := []struct {
		name, want string
		unsafe     bool
	}{
		{name: "etc/passwd", want: "etc/passwd"},
		{name: "./etc/passwd", want: "etc/passwd"},
		{name: "/etc/passwd", want: "etc/passwd"},
		{name: "//etc//passwd/", want: "etc/passwd"},
		{name: "./", want: ""},
		{name: "/", want: ""},
		{name: "..", unsafe: true},
		{name: "../x", unsafe: true},
		{name: "/../x", unsafe: true},
		{name: "a/../../x", unsafe: true},
		{name: "a/../b", unsafe: true},
		{name: "a/..", unsafe: true},
		{name: "..x/y", want: "..x/y"},
	}
	for _, tt := range tests {
		got, err := entryPath(tt.name)
		if tt.unsafe {
			if !errors.Is(err, ErrUnsafeEntry) || !strings.Contains(err.Error(), `"`+tt.name+`"`) {
				t.Errorf("entryPath(%q) = %q, %v; want ErrUnsafeEntry naming it", tt.name, got, err)
			}
			continue
		}
		if err != nil || got != tt.want {
			t.Errorf("entryPath(%q) = %q, %v; want %q", tt.name, got, err, tt.want)
		}
	}
}

// Every archive here tries to write or link outside the destination. Each
// must be refused, naming the entry, with nothing written outside: the
// sibling directory the tricks aim at stays empty and the outside file
// keeps its single link.
func TestExtractRefusesEscapes(t *testing.T) {
	parent := t.TempDir()
	sibling := filepath.Join(parent, "sibling")
	outside := filepath.Join(parent, "outside")
	tests := []struct {
		name    string
		entries []entry
		bad     string // the entry the error must name
	}{
		{"dot-dot", []entry{file("../sibling/x", "pwned")}, "../sibling/x"},
		{"dot-dot inside", []entry{dir("a/"), file("a/../../sibling/x", "pwned")}, "a/../../sibling/x"},
		{"absolute dot-dot", []entry{file("/../sibling/x", "pwned")}, "/../sibling/x"},
		{"through an absolute symlink", []entry{symlink("link", sibling), file("link/passwd", "pwned")}, "link/passwd"},
		{"through a relative symlink", []entry{symlink("link", "../sibling"), file("link/passwd", "pwned")}, "link/passwd"},
		{"through a symlink to /", []entry{symlink("link", "/"), file("link"+sibling+"/x", "pwned")}, "link" + sibling + "/x"},
		{"through a nested symlink", []entry{dir("a/"), symlink("a/link", sibling), file("a/link/b/c", "pwned")}, "a/link/b/c"},
		{"directory through a symlink", []entry{symlink("link", sibling), dir("link/d/")}, "link/d/"},
		{"symlink through a symlink", []entry{symlink("link", sibling), symlink("link/s", "/etc/shadow")}, "link/s"},
		{"hard link out", []entry{hardlink("hl", "../outside")}, "hl"},
		{"hard link far out", []entry{hardlink("hl", "../../../../outside")}, "hl"},
		{"hard link through a symlink", []entry{symlink("link", parent), hardlink("hl", "link/outside")}, "hl"},
		{"hard link into a symlinked dir", []entry{file("f", "x"), symlink("link", sibling), hardlink("link/hl", "f")}, "link/hl"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			for _, d := range []string{sibling} {
				if err := os.MkdirAll(d, 0o755); err != nil {
					t.Fatal(err)
				}
			}
			if err := os.WriteFile(outside, []byte("secret"), 0o600); err != nil {
				t.Fatal(err)
			}
			dst := filepath.Join(parent, "dst-"+strings.ReplaceAll(tt.name, " ", "-"))
			err := extractTar(bytes.NewReader(makeTar(t, tt.entries...)), dst, extractOptions{privileged: os.Geteuid() == 0})
			if !errors.Is(err, ErrUnsafeEntry) || !strings.Contains(err.Error(), `"`+tt.bad+`"`) {
				t.Errorf("extract: got %v, want ErrUnsafeEntry naming %q", err, tt.bad)
			}
			if ents, _ := os.ReadDir(sibling); len(ents) != 0 {
				t.Errorf("something was written outside the destination: %s holds %v", sibling, ents)
			}
			var st unix.Stat_t
			if err := unix.Stat(outside, &st); err != nil || st.Nlink != 1 {
				t.Errorf("%s: nlink %d, %v; want 1 (no hard link to it)", outside, st.Nlink, err)
			}
		})
	}
}

// Names that look alarming but stay inside are unpacked inside.
func TestExtractKeepsOddNamesInside(t *testing.T) {
	parent := t.TempDir()
	sibling := filepath.Join(parent, "sibling")
	if err := os.Mkdir(sibling, 0o755); err != nil {
		t.Fatal(err)
	}
	dst := filepath.Join(parent, "dst")
	entries := []entry{
		file("/etc/abs", "absolute"),
		file("./dot/rel", "dotted"),
		symlink("link", sibling+"/f"),
		file("link", "replaces the symlink, not written through it"),
		symlink("dirlink", sibling),
		dir("dirlink/"),
		file("dirlink/inside", "in a real directory"),
	}
	if err := extractTar(bytes.NewReader(makeTar(t, entries...)), dst, extractOptions{privileged: os.Geteuid() == 0}); err != nil {
		t.Fatal(err)
	}
	for rel, want := range map[string]string{"etc/abs": "absolute", "dot/rel": "dotted", "link": entries[3].body, "dirlink/inside": entries[6].body} {
		if got, err := os.ReadFile(filepath.Join(dst, rel)); err != nil || string(got) != want {
			t.Errorf("%s = %q, %v; want %q", rel, got, err, want)
		}
	}
	if ents, _ := os.ReadDir(sibling); len(ents) != 0 {
		t.Errorf("something was written outside the destination: %v", ents)
	}
}

// A normal rootfs: every kind of entry, with its metadata, as root and
// as an ordinary user would get it.
func TestExtractKeepsMetadata(t *testing.T) {
	entries := []entry{
		dir("./"),
		{name: "./ro/", typ: tar.TypeDir, mode: 0o555, uid: 1001, gid: 1002},
		file("./ro/inside", "written before the directory was made read-only"),
		{name: "./bin/su", typ: tar.TypeReg, mode: 0o4755, body: "setuid", uid: 0, gid: 0},
		{name: "./etc/shadow", typ: tar.TypeReg, mode: 0o640, body: "root:*:", uid: 0, gid: 42},
		{name: "./home/u/file", typ: tar.TypeReg, mode: 0o600, body: "mine", uid: 1000, gid: 1000},
		symlink("./bin/sh", "busybox"),
		hardlink("./etc/shadow-", "etc/shadow"),
		{name: "./run/fifo", typ: tar.TypeFifo, mode: 0o620},
		{name: "./dev/null", typ: tar.TypeChar, mode: 0o666, major: 1, minor: 3},
		{name: "./xattr", typ: tar.TypeReg, mode: 0o644, body: "x", pax: map[string]string{
			"SCHILY.xattr.user.note": "kept", "SCHILY.xattr.trusted.overlay.opaque": "y", "SCHILY.xattr.user.overlay.opaque": "y"}},
		hardlink("./early", "late"), // a flattened image lists upper layers first
		file("./late", "target after its link"),
	}
	for _, privileged := range []bool{true, false} {
		name := map[bool]string{true: "privileged", false: "unprivileged"}[privileged]
		t.Run(name, func(t *testing.T) {
			if privileged && os.Geteuid() != 0 {
				t.Skip("owners and device nodes need root")
			}
			dst := filepath.Join(t.TempDir(), "dst")
			// The archive's read-only directory stays so: an ordinary user
			// must open it up again for TempDir's cleanup.
			t.Cleanup(func() { _ = os.Chmod(filepath.Join(dst, "ro"), 0o755) })
			var warnings []string
			o := extractOptions{privileged: privileged, warn: func(m string) { warnings = append(warnings, m) }}
			if err := extractTar(bytes.NewReader(makeTar(t, entries...)), dst, o); err != nil {
				t.Fatal(err)
			}
			me := os.Geteuid()
			owner := func(uid int) int {
				if privileged {
					return uid
				}
				return me
			}
			checks := []struct {
				rel      string
				kind     uint32
				mode     uint32
				uid, gid int
			}{
				{"ro", unix.S_IFDIR, 0o555, owner(1001), owner(1002)},
				{"ro/inside", unix.S_IFREG, 0o644, owner(0), owner(0)},
				{"bin/su", unix.S_IFREG, 0o4755, owner(0), owner(0)},
				{"etc/shadow", unix.S_IFREG, 0o640, owner(0), owner(42)},
				{"home/u/file", unix.S_IFREG, 0o600, owner(1000), owner(1000)},
				{"bin/sh", unix.S_IFLNK, 0o777, owner(0), owner(0)},
				{"run/fifo", unix.S_IFIFO, 0o620, owner(0), owner(0)},
			}
			if privileged {
				checks = append(checks, struct {
					rel      string
					kind     uint32
					mode     uint32
					uid, gid int
				}{"dev/null", unix.S_IFCHR, 0o666, 0, 0})
			}
			for _, c := range checks {
				var st unix.Stat_t
				if err := unix.Lstat(filepath.Join(dst, c.rel), &st); err != nil {
					t.Errorf("%s: %v", c.rel, err)
					continue
				}
				if st.Mode&unix.S_IFMT != c.kind || st.Mode&0o7777 != c.mode || int(st.Uid) != c.uid || int(st.Gid) != c.gid {
					t.Errorf("%s: type %o mode %o owner %d:%d; want type %o mode %o owner %d:%d",
						c.rel, st.Mode&unix.S_IFMT, st.Mode&0o7777, st.Uid, st.Gid, c.kind, c.mode, c.uid, c.gid)
				}
				if mtime := time.Unix(st.Mtim.Unix()); !mtime.Equal(testTime) {
					t.Errorf("%s: mtime %v, want %v", c.rel, mtime, testTime)
				}
			}
			var null unix.Stat_t
			err := unix.Lstat(filepath.Join(dst, "dev/null"), &null)
			switch {
			case privileged && (err != nil || unix.Major(null.Rdev) != 1 || unix.Minor(null.Rdev) != 3):
				t.Errorf("dev/null: %v, rdev %d:%d; want the 1:3 device", err, unix.Major(null.Rdev), unix.Minor(null.Rdev))
			case !privileged && err == nil:
				t.Errorf("dev/null was made without privileges")
			}
			if target, err := os.Readlink(filepath.Join(dst, "bin/sh")); target != "busybox" {
				t.Errorf("bin/sh -> %q, %v; want busybox", target, err)
			}
			sameInode(t, filepath.Join(dst, "etc/shadow"), filepath.Join(dst, "etc/shadow-"))
			sameInode(t, filepath.Join(dst, "late"), filepath.Join(dst, "early"))
			buf := make([]byte, 64)
			if n, err := unix.Getxattr(filepath.Join(dst, "xattr"), "user.note", buf); err != nil || string(buf[:n]) != "kept" {
				t.Errorf("xattr user.note = %q, %v; want kept", buf[:max(n, 0)], err)
			}
			for _, attr := range []string{"trusted.overlay.opaque", "user.overlay.opaque"} {
				if _, err := unix.Getxattr(filepath.Join(dst, "xattr"), attr, buf); err == nil {
					t.Errorf("xattr %s was set: an archive must not plant overlayfs markers", attr)
				}
			}
			wantWarn := 0
			if !privileged {
				wantWarn = 1
			}
			if got := len(warnings); got != wantWarn || wantWarn == 1 && !strings.Contains(warnings[0], "dev/null") {
				t.Errorf("warnings %q; want %d naming dev/null", warnings, wantWarn)
			}
		})
	}
}

func sameInode(t *testing.T, a, b string) {
	t.Helper()
	var sa, sb unix.Stat_t
	if err := unix.Lstat(a, &sa); err != nil {
		t.Fatal(err)
	}
	if err := unix.Lstat(b, &sb); err != nil {
		t.Fatal(err)
	}
	if sa.Ino != sb.Ino || sa.Nlink != 2 {
		t.Errorf("%s and %s: inodes %d, %d (nlink %d); want one inode, two links", a, b, sa.Ino, sb.Ino, sa.Nlink)
	}
}

func TestExtractRefusesNonsense(t *testing.T) {
	tests := []struct {
		name    string
		archive []byte
		want    string
	}{
		{"empty", makeTar(t), "empty"},
		{"not a tar", bytes.Repeat([]byte("x"), 2048), "read archive"},
		{"file at the root", makeTar(t, file(".", "x")), "root must be a directory"},
		{"file as a parent", makeTar(t, file("a", "x"), file("a/b", "y")), "not a directory"},
		{"dangling hard link", makeTar(t, hardlink("hl", "missing")), "hard link"},
	}
	for _, tt := range tests {
		dst := filepath.Join(t.TempDir(), "dst")
		err := extractTar(bytes.NewReader(tt.archive), dst, extractOptions{})
		if err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("%s: got %v, want an error saying %q", tt.name, err, tt.want)
		}
	}
}
