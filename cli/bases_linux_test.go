package cli

import (
	"archive/tar"
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/tarball"

	"github.com/incarnate-dev/incarnate/internal/testbase"
)

// tarTree archives the tree at root as a rootfs tarball ("./etc/..."),
// symlinks and modes included, the way tar -C root -cf - . would.
func tarTree(t *testing.T, root string) []byte {
	t.Helper()
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		fi, err := d.Info()
		if err != nil {
			return err
		}
		link := ""
		if fi.Mode()&fs.ModeSymlink != 0 {
			if link, err = os.Readlink(p); err != nil {
				return err
			}
		}
		hdr, err := tar.FileInfoHeader(fi, link)
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(root, p)
		hdr.Name = "./" + rel
		if d.IsDir() {
			hdr.Name += "/"
		}
		if err := tw.WriteHeader(hdr); err != nil {
			return err
		}
		if fi.Mode().IsRegular() {
			f, err := os.Open(p)
			if err != nil {
				return err
			}
			defer f.Close()
			_, err = io.Copy(tw, f)
			return err
		}
		return nil
	})
	if err == nil {
		err = tw.Close()
	}
	if err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// layerTar is a small layer: files with their contents ("" for a
// directory when the name ends in "/").
func layerTar(t *testing.T, files ...string) []byte {
	t.Helper()
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for i := 0; i < len(files); i += 2 {
		hdr := &tar.Header{Name: files[i], Typeflag: tar.TypeReg, Mode: 0o644, Size: int64(len(files[i+1]))}
		if strings.HasSuffix(files[i], "/") {
			hdr.Typeflag, hdr.Mode = tar.TypeDir, 0o755
		}
		if err := tw.WriteHeader(hdr); err != nil {
			t.Fatal(err)
		}
		if _, err := tw.Write([]byte(files[i+1])); err != nil {
			t.Fatal(err)
		}
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// shareFile writes a file in the harness's directory, readable by the
// unprivileged uid too.
func (h *harness) shareFile(name string, data []byte) string {
	h.t.Helper()
	p := filepath.Join(h.dir, name)
	if err := os.WriteFile(p, data, 0o644); err != nil {
		h.t.Fatal(err)
	}
	return p
}

func TestBaseImportTarballs(t *testing.T) {
	forEachUser(t, func(t *testing.T, h *harness) {
		rootfs := tarTree(t, h.base)
		for _, kind := range []string{"gz", "zst", "xz"} {
			src := h.shareFile("bb.tar."+kind, testbase.Compress(t, kind, rootfs))
			out, errOut, status := h.run("base", "import", "bb-"+kind, src)
			if status != 0 || !strings.HasPrefix(out, "imported base bb-"+kind+" from "+src) {
				t.Fatalf("import %s: status %d\nstdout %q\nstderr %q", src, status, out, errOut)
			}
			// No terminal: no progress line. An ordinary user without
			// sub-ids is told once that the files become theirs.
			wantErr := ""
			if h.u.uid != 0 && !h.u.subIDs {
				wantErr = "incarnate: note: importing as an ordinary user: every file becomes yours, whatever owner the source records\n"
			}
			if errOut != wantErr {
				t.Errorf("import %s as %s: stderr %q, want %q", kind, h.u.name, errOut, wantErr)
			}
			h.ok("new", "--base", "bb-"+kind, "s-"+kind)
			if got := h.ok("run", "s-"+kind, "--", "cat", "/etc/os-release"); got != "ID=incarnate-test\n" {
				t.Errorf("inside a session on the %s import: %q", kind, got)
			}
		}
	})
}

// testImage stacks three layers over the busybox root: a file in /opt,
// then one that deletes /etc/group (whiteout), hides /opt's lower content
// (opaque marker) and adds files.
func (h *harness) testImage(t *testing.T) v1.Image {
	layer := func(data []byte) v1.Layer {
		l, err := tarball.LayerFromOpener(func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(data)), nil })
		if err != nil {
			t.Fatal(err)
		}
		return l
	}
	img, err := mutate.AppendLayers(empty.Image,
		layer(tarTree(t, h.base)),
		layer(layerTar(t, "opt/", "", "opt/old", "hidden")),
		layer(layerTar(t, "etc/.wh.group", "", "etc/motd", "from the upper layer\n", "opt/", "", "opt/.wh..wh..opq", "", "opt/new", "new\n")),
	)
	if err != nil {
		t.Fatal(err)
	}
	return img
}

func TestBaseImportImage(t *testing.T) {
	forEachUser(t, func(t *testing.T, h *harness) {
		img := h.testImage(t)
		oci := filepath.Join(h.dir, "oci")
		p, err := layout.Write(oci, empty.Index)
		if err == nil {
			err = p.AppendImage(img)
		}
		if err != nil {
			t.Fatal(err)
		}
		shareTree(t, oci)
		ref, err := name.NewTag("incarnate.test/bb:1")
		if err != nil {
			t.Fatal(err)
		}
		docker := filepath.Join(h.dir, "docker-save.tar")
		if err := tarball.WriteToFile(docker, ref, img); err != nil {
			t.Fatal(err)
		}
		shareTree(t, docker)
		for base, src := range map[string]string{"from-layout": oci, "from-docker": docker} {
			h.ok("base", "import", base, src)
			h.ok("new", "--base", base, base)
			out := h.ok("run", base, "--", "sh", "-c", "cat /etc/motd; ls /opt; test -e /etc/group || echo group deleted; cat /etc/os-release")
			if want := "from the upper layer\nnew\ngroup deleted\nID=incarnate-test\n"; out != want {
				t.Errorf("a session on %s sees %q, want %q", src, out, want)
			}
		}
	})
}

// shareTree opens what go-containerregistry wrote to the unprivileged uid.
func shareTree(t *testing.T, root string) {
	t.Helper()
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() {
			return os.Chmod(p, 0o755)
		}
		return os.Chmod(p, 0o644)
	})
	if err != nil {
		t.Fatal(err)
	}
}

type baseLsRow struct {
	Name     string   `json:"name"`
	Builtin  bool     `json:"builtin"`
	Layers   []string `json:"layers"`
	Size     *int64   `json:"size"`
	Sessions []string `json:"sessions"`
	Source   string   `json:"source"`
}

func (h *harness) baseLs() map[string]baseLsRow {
	h.t.Helper()
	var rows []baseLsRow
	out := h.ok("base", "ls", "--json")
	if err := json.Unmarshal([]byte(out), &rows); err != nil {
		h.t.Fatalf("base ls --json: %v\n%s", err, out)
	}
	if len(rows) == 0 || rows[0].Name != "host" || !rows[0].Builtin {
		h.t.Errorf("base ls --json: %s; want the host base first", out)
	}
	byName := map[string]baseLsRow{}
	for _, r := range rows {
		byName[r.Name] = r
	}
	return byName
}

func TestBaseLsAndRm(t *testing.T) {
	forEachUser(t, func(t *testing.T, h *harness) {
		h.ok("new", "--base", "bb", "s")
		h.ok("new", "--base", "bb", "t")
		bb := h.baseLs()["bb"]
		if strings.Join(bb.Sessions, ",") != "s,t" || len(bb.Layers) != 1 || bb.Size == nil || *bb.Size < 1<<20 || bb.Source != h.base {
			t.Errorf("base ls --json row of bb: %+v; want sessions s,t, one layer, its size, source %s", bb, h.base)
		}
		if out := h.ok("base", "ls"); !strings.Contains(out, "SESSIONS") || !strings.Contains(out, " s,t ") {
			t.Errorf("base ls does not show the sessions on bb:\n%s", out)
		}
		// Without --yes as well: the refusal and its reason come before
		// any question of whether to go ahead.
		for _, yes := range [][]string{{"--yes"}, nil} {
			_, errOut, status := h.run(append(append([]string{"base", "rm"}, yes...), "bb")...)
			if status != 1 || !strings.Contains(errOut, "in use by sessions s, t") || !strings.Contains(errOut, "incarnate rm s t") {
				t.Errorf("base rm %v of a used base: status %d, stderr %q; want a refusal naming s and t", yes, status, errOut)
			}
			for _, refusal := range []struct{ name, says string }{{"host", "built in"}, {"nope", "does not exist"}, {"../x", "name"}} {
				if _, errOut, status := h.run(append(append([]string{"base", "rm"}, yes...), refusal.name)...); status == 0 || !strings.Contains(errOut, refusal.says) {
					t.Errorf("base rm %v %s: status %d, stderr %q; want a refusal saying %q", yes, refusal.name, status, errOut, refusal.says)
				}
			}
		}
		layers := testbase.DirNames(t, filepath.Join(h.store, "layers"))
		h.ok("rm", "--yes", "s", "t")
		if out := h.ok("base", "rm", "--yes", "bb"); !strings.HasPrefix(out, "removed base bb (") {
			t.Errorf("base rm: %q", out)
		}
		if _, ok := h.baseLs()["bb"]; ok {
			t.Errorf("bb still listed after base rm")
		}
		if got := testbase.DirNames(t, filepath.Join(h.store, "layers")); len(layers) != 1 || len(got) != 0 {
			t.Errorf("layers before %v, after %v; want bb's one layer gone", layers, got)
		}
		if got := testbase.DirNames(t, filepath.Join(h.store, "bases")); len(got) != 0 {
			t.Errorf("bases/ holds %v after the last base went", got)
		}
	})
}

// A kill at either point of an import leaves no base and, by the next
// import, no layer; the same import then succeeds.
func TestBaseImportCrash(t *testing.T) {
	forEachUser(t, func(t *testing.T, h *harness) {
		src := h.shareFile("bb.tar.gz", testbase.Compress(t, "gz", tarTree(t, h.base)))
		bbLayer := testbase.DirNames(t, filepath.Join(h.store, "layers"))
		for _, point := range []string{"import-unpacked", "import-layer"} {
			cmd := h.command("base", "import", "crash", src)
			cmd.Env = append(cmd.Env, "INCARNATE_FAULT="+point)
			err := cmd.Run()
			var ee *exec.ExitError
			if !errors.As(err, &ee) || ee.Sys().(syscall.WaitStatus).Signal() != syscall.SIGKILL {
				t.Fatalf("import with INCARNATE_FAULT=%s: %v; want death by SIGKILL", point, err)
			}
			if _, ok := h.baseLs()["crash"]; ok {
				t.Errorf("killed at %s, the base is listed", point)
			}
			if got := testbase.DirNames(t, filepath.Join(h.store, "bases")); strings.Join(got, ",") != "bb.json" {
				t.Errorf("killed at %s: bases/ holds %v", point, got)
			}
			if got := testbase.DirNames(t, filepath.Join(h.store, "layers")); point == "import-unpacked" && strings.Join(got, ",") != strings.Join(bbLayer, ",") {
				t.Errorf("killed at %s: layers/ holds %v, want only %v", point, got, bbLayer)
			}
		}
		h.ok("base", "import", "crash", src)
		if got := testbase.DirNames(t, filepath.Join(h.store, "layers")); len(got) != 2 {
			t.Errorf("after the crashes and a good import, layers/ holds %v; want bb's and crash's", got)
		}
		if got := testbase.DirNames(t, filepath.Join(h.store, "tmp")); len(got) != 0 {
			t.Errorf("tmp/ still holds %v after the next start", got)
		}
		h.ok("new", "--base", "crash", "c")
		if got := h.ok("run", "c", "--", "cat", "/etc/os-release"); got != "ID=incarnate-test\n" {
			t.Errorf("a session on the re-imported base sees %q", got)
		}
	})
}

// Archives that try to write outside are refused whole, as any user.
func TestBaseImportRefusesEscapes(t *testing.T) {
	forEachUser(t, func(t *testing.T, h *harness) {
		var buf bytes.Buffer
		tw := tar.NewWriter(&buf)
		for _, hdr := range []*tar.Header{
			{Name: "./", Typeflag: tar.TypeDir, Mode: 0o755},
			{Name: "./link", Typeflag: tar.TypeSymlink, Linkname: h.dir},
			{Name: "./link/escaped", Typeflag: tar.TypeReg, Mode: 0o644},
		} {
			if err := tw.WriteHeader(hdr); err != nil {
				t.Fatal(err)
			}
		}
		tw.Close()
		src := h.shareFile("evil.tar", buf.Bytes())
		_, errOut, status := h.run("base", "import", "evil", src)
		if status != 1 || !strings.Contains(errOut, `archive entry "./link/escaped": refused as unsafe`) {
			t.Errorf("import of an escaping archive: status %d, stderr %q", status, errOut)
		}
		if _, err := os.Lstat(filepath.Join(h.dir, "escaped")); err == nil {
			t.Errorf("the archive wrote %s", filepath.Join(h.dir, "escaped"))
		}
		if _, ok := h.baseLs()["evil"]; ok {
			t.Errorf("a refused import is listed")
		}
	})
}

// An import stops before it fills the store's file system, says so, and
// leaves nothing behind: here a 48 MiB file for a store of 40 MiB.
func TestImportStopsBeforeTheStoreIsFull(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root, to mount a small file system for the store")
	}
	h := newHarness(t, rootUser)
	src := filepath.Join(h.dir, "big")
	if err := os.MkdirAll(filepath.Join(src, "data"), 0o755); err != nil {
		t.Fatal(err)
	}
	data := make([]byte, 48<<20)
	for i := range data {
		data[i] = byte(i*7 + i/4096) // no run of zeros to leave as a hole
	}
	if err := os.WriteFile(filepath.Join(src, "data", "blob"), data, 0o644); err != nil {
		t.Fatal(err)
	}
	tarball := filepath.Join(h.dir, "big.tar")
	if out, err := exec.Command("tar", "-cf", tarball, "-C", src, ".").CombinedOutput(); err != nil {
		t.Fatalf("tar: %v\n%s", err, out)
	}
	smallStore(t, h)
	for _, from := range []string{tarball, src} {
		importRefusedForSpace(t, h, from)
	}
}

// smallStore moves h's store onto a tmpfs of 40 MiB of its own.
func smallStore(t *testing.T, h *harness) {
	t.Helper()
	small := filepath.Join(h.dir, "small")
	if err := os.Mkdir(small, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := unix.Mount("tmpfs", small, "tmpfs", 0, "size=40m,mode=0700"); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = unix.Unmount(small, unix.MNT_DETACH) })
	h.store = filepath.Join(small, "store")
}

// importRefusedForSpace imports from into h's small store, which must
// refuse it, saying why, before the file system is full, and leave
// nothing behind.
func importRefusedForSpace(t *testing.T, h *harness, from string) {
	t.Helper()
	_, errOut, status := h.run("base", "import", "big", from)
	if status == 0 || !strings.Contains(errOut, "not enough space") {
		t.Errorf("import of %s into a store too small: status %d, stderr %q; want a refusal that says why", from, status, errOut)
	}
	if !emptyDir(filepath.Join(h.store, "tmp")) {
		t.Errorf("a refused import of %s left work in the store", from)
	}
	var st unix.Statfs_t
	if err := unix.Statfs(filepath.Dir(h.store), &st); err != nil || st.Bavail == 0 {
		t.Errorf("the store's file system was filled: %v", err)
	}
	if out := h.ok("base", "ls"); strings.Contains(out, "big") {
		t.Errorf("a refused import is a base:\n%s", out)
	}
}
