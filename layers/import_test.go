package layers

import (
	"bytes"
	"errors"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
	"golang.org/x/sys/unix"

	"github.com/incarnate-dev/incarnate/internal/testbase"
)

func openStore(t *testing.T) *Store {
	t.Helper()
	s, err := Open(filepath.Join(t.TempDir(), "store"))
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func writeFile(t *testing.T, path string, data []byte) string {
	t.Helper()
	if err := os.WriteFile(path, data, 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

// The content decides how a tarball is read, not its name.
func TestImportTarballByContent(t *testing.T) {
	rootfs := makeTar(t, dir("./"), dir("./etc/"), file("./etc/os-release", "ID=test\n"))
	tests := []struct{ compression, file string }{
		{"", "rootfs.tar.gz"},
		{"gzip", "rootfs.tar"},
		{"zstd", "rootfs.tgz"},
		{"xz", "rootfs"},
	}
	for _, tt := range tests {
		s := openStore(t)
		src := writeFile(t, filepath.Join(t.TempDir(), tt.file), testbase.Compress(t, tt.compression, rootfs))
		kind, compression, err := sniff(src)
		if err != nil || kind != kindRootfs || compression != tt.compression {
			t.Errorf("sniff(%s as %q) = %v, %q, %v; want a rootfs in %q", tt.file, tt.compression, kind, compression, err, tt.compression)
		}
		b, err := s.Import("b", src, ImportOptions{})
		if err != nil {
			t.Fatalf("import %s (%q): %v", tt.file, tt.compression, err)
		}
		got, err := os.ReadFile(filepath.Join(s.LayerDir(b.Layers[0]), "etc/os-release"))
		if err != nil || string(got) != "ID=test\n" {
			t.Errorf("%s: etc/os-release = %q, %v", tt.file, got, err)
		}
		if size, ok := b.Size(); !ok || size <= 0 {
			t.Errorf("%s: size %d, %v; want it recorded", tt.file, size, ok)
		}
	}
}

func TestImportRefusesWhatItCannotRead(t *testing.T) {
	s := openStore(t)
	dir := t.TempDir()
	for _, src := range []string{
		writeFile(t, filepath.Join(dir, "text"), []byte(strings.Repeat("not a tarball\n", 100))),
		writeFile(t, filepath.Join(dir, "empty"), nil),
		writeFile(t, filepath.Join(dir, "gz-text.tar.gz"), testbase.Compress(t, "gzip", []byte("hello"))),
	} {
		if _, err := s.Import("b", src, ImportOptions{}); !errors.Is(err, ErrUnknownSource) {
			t.Errorf("import %s: %v, want ErrUnknownSource", src, err)
		}
	}
	if _, err := s.Import("host", dir, ImportOptions{}); !errors.Is(err, ErrBuiltin) {
		t.Errorf("import as host: %v, want ErrBuiltin", err)
	}
	assertEmpty(t, filepath.Join(s.Root, "layers"), filepath.Join(s.Root, "bases"))
}

func assertEmpty(t *testing.T, dirs ...string) {
	t.Helper()
	for _, d := range dirs {
		if ents, err := os.ReadDir(d); err != nil || len(ents) != 0 {
			t.Errorf("%s: %v, %v; want it empty", d, ents, err)
		}
	}
}

// imageOf builds an image from layers given as tar entries, bottom first.
func imageOf(t *testing.T, layers ...[]entry) v1.Image {
	t.Helper()
	var ls []v1.Layer
	for _, entries := range layers {
		data := makeTar(t, entries...)
		l, err := tarball.LayerFromOpener(func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(data)), nil })
		if err != nil {
			t.Fatal(err)
		}
		ls = append(ls, l)
	}
	img, err := mutate.AppendLayers(empty.Image, ls...)
	if err != nil {
		t.Fatal(err)
	}
	return img
}

// testImage has three layers: a root, a file in /opt, and an upper layer
// that deletes a file (whiteout), hides /opt's lower content (opaque
// marker), replaces one file and adds others.
func testImage(t *testing.T) v1.Image {
	return imageOf(t,
		[]entry{dir("etc/"), file("etc/gone", "deleted above"), file("etc/kept", "lower"), file("etc/replaced", "lower")},
		[]entry{dir("opt/"), file("opt/old", "hidden by the opaque marker")},
		[]entry{dir("etc/"), file("etc/.wh.gone", ""), file("etc/replaced", "upper"), file("etc/added", "upper"),
			dir("opt/"), file("opt/.wh..wh..opq", ""), file("opt/new", "upper"), hardlink("opt/new-link", "etc/kept")},
	)
}

func checkFlattened(t *testing.T, root string) {
	t.Helper()
	want := map[string]string{"etc/kept": "lower", "etc/replaced": "upper", "etc/added": "upper", "opt/new": "upper", "opt/new-link": "lower"}
	got := map[string]string{}
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		b, err := os.ReadFile(p)
		rel, _ := filepath.Rel(root, p)
		got[rel] = string(b)
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != len(want) {
		t.Errorf("flattened image holds %v, want %v", got, want)
	}
	for rel, body := range want {
		if got[rel] != body {
			t.Errorf("%s = %q, want %q", rel, got[rel], body)
		}
	}
}

// tarDir archives the tree at root.
func tarDir(t *testing.T, root string) []byte {
	t.Helper()
	var entries []entry
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil || p == root {
			return err
		}
		rel, _ := filepath.Rel(root, p)
		if d.IsDir() {
			entries = append(entries, dir(rel+"/"))
			return nil
		}
		b, err := os.ReadFile(p)
		entries = append(entries, file(rel, string(b)))
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	return makeTar(t, entries...)
}

func TestImportImage(t *testing.T) {
	img := testImage(t)
	work := t.TempDir()
	oci := filepath.Join(work, "oci")
	p, err := layout.Write(oci, empty.Index)
	if err != nil {
		t.Fatal(err)
	}
	if err := p.AppendImage(img); err != nil {
		t.Fatal(err)
	}
	ref, err := name.NewTag("incarnate.test/flat:1")
	if err != nil {
		t.Fatal(err)
	}
	docker := filepath.Join(work, "docker-save.tar")
	if err := tarball.WriteToFile(docker, ref, img); err != nil {
		t.Fatal(err)
	}
	dockerTar, err := os.ReadFile(docker)
	if err != nil {
		t.Fatal(err)
	}
	sources := map[string]string{
		"OCI layout":            oci,
		"OCI archive":           writeFile(t, filepath.Join(work, "oci.tar"), tarDir(t, oci)),
		"docker save":           docker,
		"docker save, zstd":     writeFile(t, filepath.Join(work, "docker.tar.zst"), testbase.Compress(t, "zstd", dockerTar)),
		"OCI archive, gzip":     writeFile(t, filepath.Join(work, "oci.tgz"), testbase.Compress(t, "gzip", tarDir(t, oci))),
		"docker save, progress": docker,
	}
	for what, src := range sources {
		t.Run(what, func(t *testing.T) {
			s := openStore(t)
			var o ImportOptions
			var bar bytes.Buffer
			if strings.HasSuffix(what, "progress") {
				o.Progress = &bar
			}
			b, err := s.Import("img", src, o)
			if err != nil {
				t.Fatal(err)
			}
			checkFlattened(t, s.LayerDir(b.Layers[0]))
			if o.Progress != nil && !strings.Contains(bar.String(), "100%\x1b[K\n") {
				t.Errorf("progress line %q does not end at 100%%", bar.String())
			}
			assertEmpty(t, filepath.Join(s.Root, "tmp"))
		})
	}
}

func TestImageArchiveOrRootfs(t *testing.T) {
	tests := []struct {
		names []string
		want  sourceKind
	}{
		{[]string{"./", "./bin/", "./bin/sh"}, kindRootfs},
		{[]string{".dockerenv", "bin/", "etc/passwd"}, kindRootfs},
		{[]string{"blobs/", "blobs/sha256/", "blobs/sha256/ab"}, kindImageArchive},
		{[]string{"oci-layout", "index.json"}, kindImageArchive},
		{[]string{strings.Repeat("ab", 32) + "/", strings.Repeat("ab", 32) + "/VERSION"}, kindImageArchive},
		{[]string{strings.Repeat("cd", 32) + ".json", "manifest.json"}, kindImageArchive},
		{[]string{"sha256:" + strings.Repeat("ef", 32), strings.Repeat("01", 32) + ".tar.gz"}, kindImageArchive},
		{[]string{strings.Repeat("01", 32) + ".tar", "manifest.json"}, kindImageArchive},
	}
	for _, tt := range tests {
		var entries []entry
		for _, n := range tt.names {
			if strings.HasSuffix(n, "/") {
				entries = append(entries, dir(n))
			} else {
				entries = append(entries, file(n, "x"))
			}
		}
		if got, err := tarKind(bytes.NewReader(makeTar(t, entries...))); err != nil || got != tt.want {
			t.Errorf("tarKind(%v) = %v, %v; want %v", tt.names, got, err, tt.want)
		}
	}
}

// fakeLayer publishes a layer holding one file, as an import would.
func fakeLayer(t *testing.T, s *Store) string {
	t.Helper()
	id, err := s.NewLayer(func(dst string) error {
		if err := os.Mkdir(dst, 0o755); err != nil {
			return err
		}
		return os.WriteFile(filepath.Join(dst, "f"), bytes.Repeat([]byte("x"), 10000), 0o644)
	})
	if err != nil {
		t.Fatal(err)
	}
	return id
}

func addBase(t *testing.T, s *Store, name string, ids ...string) {
	t.Helper()
	if _, err := s.AddBase(name, ids, "test"); err != nil {
		t.Fatal(err)
	}
}

func TestRemoveBase(t *testing.T) {
	s := openStore(t)
	low, top := fakeLayer(t, s), fakeLayer(t, s)
	addBase(t, s, "a", low)
	addBase(t, s, "b", top, low) // b is built on a
	addBase(t, s, "a-copy", low) // the same layers: not built on a
	if _, err := s.AddBase("a", []string{low}, "again"); !errors.Is(err, ErrExist) {
		t.Errorf("AddBase of a taken name: %v, want ErrExist", err)
	}
	if _, err := s.RemoveBase("a"); !errors.Is(err, ErrInUse) || !strings.Contains(err.Error(), "base b is built on it") {
		t.Errorf("remove a under b: %v, want ErrInUse naming b", err)
	}
	if _, err := s.RemoveBase(HostBase); !errors.Is(err, ErrBuiltin) {
		t.Errorf("remove host: %v, want ErrBuiltin", err)
	}
	steps := []struct {
		base   string
		freed  bool
		layers []string
	}{
		{"b", true, []string{low}},   // b's own layer goes, a's stays
		{"a", false, []string{low}},  // a-copy still names it
		{"a-copy", true, []string{}}, // the last one out
	}
	for _, st := range steps {
		freed, err := s.RemoveBase(st.base)
		if err != nil {
			t.Fatalf("remove %s: %v", st.base, err)
		}
		if (freed > 0) != st.freed {
			t.Errorf("remove %s freed %d bytes; want some: %v", st.base, freed, st.freed)
		}
		if got := testbase.DirNames(t, filepath.Join(s.Root, "layers")); strings.Join(got, ",") != strings.Join(st.layers, ",") {
			t.Errorf("after removing %s, layers %v; want %v", st.base, got, st.layers)
		}
		if _, err := s.Get(st.base); !errors.Is(err, ErrNotExist) {
			t.Errorf("base %s still there: %v", st.base, err)
		}
	}
	assertEmpty(t, filepath.Join(s.Root, "tmp"), filepath.Join(s.Root, "bases"))
}

// A layer no base names is kept while the import that made it runs, and
// removed once that import is gone (as if it had been killed).
func TestSweepOrphans(t *testing.T) {
	s := openStore(t)
	named := fakeLayer(t, s)
	addBase(t, s, "named", named)
	pending := fakeLayer(t, s)
	other, err := Open(s.Root) // another incarnate process
	if err != nil {
		t.Fatal(err)
	}
	other.SweepOrphans()
	if got := testbase.DirNames(t, filepath.Join(s.Root, "layers")); len(got) != 2 {
		t.Fatalf("a sweep during an import left %v; want both layers", got)
	}
	s.release([]string{pending}) // the importer dies: the kernel drops its lock
	other.SweepOrphans()
	if got := testbase.DirNames(t, filepath.Join(s.Root, "layers")); len(got) != 1 || got[0] != named {
		t.Errorf("after the importer died, layers %v; want only %s", got, named)
	}
	assertEmpty(t, filepath.Join(s.Root, "tmp"))
}

// A directory to import may carry overlayfs's own xattrs: an opaque
// marker that would hide the layers below, a redirect. They are someone
// else's and must not reach the layer (tar imports filter them too).
func TestDirectoryImportDropsOverlayXattrs(t *testing.T) {
	src := t.TempDir()
	d := filepath.Join(src, "etc")
	if err := os.Mkdir(d, 0o755); err != nil {
		t.Fatal(err)
	}
	writeFile(t, filepath.Join(d, "hosts"), []byte("x\n"))
	planted := []string{"user.overlay.opaque", "user.overlay.redirect"}
	if os.Geteuid() == 0 {
		planted = append(planted, "trusted.overlay.opaque", "trusted.overlay.redirect")
	}
	for _, name := range planted {
		if err := unix.Lsetxattr(d, name, []byte("y"), 0); err != nil {
			t.Skipf("%s cannot be set here: %v", name, err)
		}
	}
	if err := unix.Lsetxattr(d, "user.kept", []byte("1"), 0); err != nil {
		t.Fatal(err)
	}
	s := openStore(t)
	b, err := s.Import("b", src, ImportOptions{})
	if err != nil {
		t.Fatal(err)
	}
	got := filepath.Join(s.LayerDir(b.Layers[0]), "etc")
	for _, name := range planted {
		if _, err := unix.Lgetxattr(got, name, nil); err == nil {
			t.Errorf("the imported layer's etc carries %s", name)
		}
	}
	if _, err := unix.Lgetxattr(got, "user.kept", nil); err != nil {
		t.Errorf("user.kept was dropped too: %v", err)
	}
}

// The store's own directories are closed to others whatever they were
// (a backup restored as 0755): a root session's upper dir holds set-uid
// root files that work on the host for whoever can reach them.
func TestStoreDirsAreClosed(t *testing.T) {
	root := filepath.Join(t.TempDir(), "store")
	if err := os.MkdirAll(filepath.Join(root, "layers"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(filepath.Join(root, "layers"), 0o755); err != nil {
		t.Fatal(err)
	}
	if _, err := Open(root); err != nil {
		t.Fatal(err)
	}
	fi, err := os.Stat(filepath.Join(root, "layers"))
	if err != nil || fi.Mode().Perm() != 0o700 {
		t.Errorf("layers/ is %v, %v; want 0700", fi.Mode().Perm(), err)
	}
}
