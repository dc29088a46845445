package layers

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"io/fs"
	"os"
	"path/filepath"
	"runtime"
	"sort"
	"strings"
	"testing"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
)

// tree lists the files under root as "path=content", directories as "path/".
func tree(t *testing.T, root string) string {
	t.Helper()
	var out []string
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil || p == root {
			return err
		}
		rel, _ := filepath.Rel(root, p)
		if d.IsDir() {
			out = append(out, rel+"/")
			return nil
		}
		b, err := os.ReadFile(p)
		out = append(out, rel+"="+string(b))
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	sort.Strings(out)
	return strings.Join(out, " ")
}

func TestFlattenWhiteouts(t *testing.T) {
	tests := []struct {
		name   string
		layers [][]entry // bottom first
		want   string
		warn   string
	}{
		{"file deleted", [][]entry{{file("a", "1"), file("b", "2")}, {file(".wh.a", "")}}, "b=2", ""},
		{"directory deleted, then made again", [][]entry{{dir("d/"), file("d/old", "1")}, {file(".wh.d", "")}, {dir("d/"), file("d/new", "3")}}, "d/ d/new=3", ""},
		{"file replaced by a directory", [][]entry{{file("a", "1")}, {dir("a/"), file("a/z", "2")}}, "a/ a/z=2", ""},
		{"directory replaced by a file", [][]entry{{dir("a/"), file("a/x", "1")}, {file("a", "2")}}, "a=2", ""},
		{"opaque directory", [][]entry{{dir("d/"), file("d/old", "1"), file("keep", "k")}, {dir("d/"), file("d/.wh..wh..opq", ""), file("d/new", "2")}}, "d/ d/new=2 keep=k", ""},
		{"opaque directory keeps its own layer", [][]entry{{dir("d/"), file("d/old", "1")}, {dir("d/"), file("d/new", "2"), file("d/.wh..wh..opq", "")}}, "d/ d/new=2", ""},
		{"upper file wins", [][]entry{{file("a", "lower")}, {file("a", "upper")}}, "a=upper", ""},
		{"link to a lower file", [][]entry{{file("f", "1")}, {hardlink("g", "f")}}, "f=1 g=1", ""},
		{"link to a deleted name", [][]entry{{file("f", "1"), hardlink("g", "f")}, {file(".wh.f", ""), file("h", "2")}}, "h=2", "skipped hard links to names an upper layer deleted: g"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dst := filepath.Join(t.TempDir(), "dst")
			var warnings []string
			xo := extractOptions{warn: func(m string) { warnings = append(warnings, m) }}
			if err := flatten(imageOf(t, tt.layers...), dst, ImportOptions{}, xo); err != nil {
				t.Fatal(err)
			}
			if got := tree(t, dst); got != tt.want {
				t.Errorf("flattened: %q, want %q", got, tt.want)
			}
			if got := strings.Join(warnings, "; "); got != tt.warn {
				t.Errorf("warnings %q, want %q", got, tt.warn)
			}
		})
	}
}

// TestPickImage: which image of a layout or archive is imported, and
// what is refused with a hint.
func TestPickImage(t *testing.T) {
	other := "arm64"
	if runtime.GOARCH == "arm64" {
		other = "amd64"
	}
	one := func(content string) v1.Image { return imageOf(t, []entry{file("which", content)}) }
	on := func(os, arch string, img v1.Image) mutate.IndexAddendum {
		return mutate.IndexAddendum{Add: img, Descriptor: v1.Descriptor{Platform: &v1.Platform{OS: os, Architecture: arch}}}
	}
	multi := mutate.AppendManifests(empty.Index, on("linux", other, one("theirs")), on("linux", runtime.GOARCH, one("mine")), on("unknown", "unknown", one("attestation")))
	tests := []struct {
		name string
		idx  v1.ImageIndex
		want string
		err  string
	}{
		{"one image", mutate.AppendManifests(empty.Index, mutate.IndexAddendum{Add: one("only")}), "which=only", ""},
		{"multi-platform", multi, "which=mine", ""},
		{"multi-platform, nested", mutate.AppendManifests(empty.Index, mutate.IndexAddendum{Add: multi}), "which=mine", ""},
		{"two images", mutate.AppendManifests(empty.Index, mutate.IndexAddendum{Add: one("a")}, mutate.IndexAddendum{Add: one("b")}), "", "lists 2 images, 0 for linux/"},
		{"no image", empty.Index, "", "index.json lists no image"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := filepath.Join(t.TempDir(), "oci")
			if _, err := layout.Write(dir, tt.idx); err != nil {
				t.Fatal(err)
			}
			dst := filepath.Join(t.TempDir(), "dst")
			err := importLayout(dir, dst, ImportOptions{}, extractOptions{})
			if tt.err != "" {
				if err == nil || !strings.Contains(err.Error(), tt.err) {
					t.Fatalf("%v; want an error saying %q", err, tt.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got := tree(t, dst); got != tt.want {
				t.Errorf("imported %q, want %q", got, tt.want)
			}
		})
	}
}

func TestDockerSaveOfTwoImagesIsRefused(t *testing.T) {
	a, err := name.NewTag("incarnate.test/a:1")
	if err != nil {
		t.Fatal(err)
	}
	b, _ := name.NewTag("incarnate.test/b:1")
	archive := filepath.Join(t.TempDir(), "two.tar")
	refs := map[name.Reference]v1.Image{a: imageOf(t, []entry{file("a", "1")}), b: imageOf(t, []entry{file("b", "2")})}
	if err := tarball.MultiRefWriteToFile(archive, refs); err != nil {
		t.Fatal(err)
	}
	_, err = dockerImage(archive)
	if err == nil || !strings.Contains(err.Error(), "holds 2 images; save just the one") {
		t.Errorf("%v; want a refusal naming docker save", err)
	}
}

// Docker before version 25 saved a layer it already held as a symlink to
// the first copy.
func TestDockerSaveWithLinkedLayers(t *testing.T) {
	layer := makeTar(t, file("shared", "1"))
	sum := sha256.Sum256(layer)
	diffID := "sha256:" + hex.EncodeToString(sum[:])
	config, err := json.Marshal(map[string]any{
		"architecture": runtime.GOARCH, "os": "linux",
		"rootfs": map[string]any{"type": "layers", "diff_ids": []string{diffID, diffID}},
	})
	if err != nil {
		t.Fatal(err)
	}
	manifest := `[{"Config":"config.json","RepoTags":["x:1"],"Layers":["a/layer.tar","b/layer.tar"]}]`
	archive := writeFile(t, filepath.Join(t.TempDir(), "old-docker.tar"), makeTar(t,
		file("manifest.json", manifest), file("config.json", string(config)),
		dir("a/"), file("a/layer.tar", string(layer)), dir("b/"), symlink("b/layer.tar", "../a/layer.tar")))
	s := openStore(t)
	b, err := s.Import("old", archive, ImportOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if got := tree(t, s.LayerDir(b.Layers[0])); got != "shared=1" {
		t.Errorf("imported %q", got)
	}
}

// A layer whose blob is not what its digest says was imported as it was,
// and a missing blob imported with success and a truncated tree, because
// mutate.Extract ends its stream cleanly when a layer fails. A blob that
// is what the manifest says but whose content is not what the config's
// diff_id says is damaged as much. All must fail, naming the layer, and
// leave no base and nothing in tmp/.
func TestImportRefusesADamagedImage(t *testing.T) {
	for _, damage := range []string{"a flipped byte", "a missing blob", "a short blob", "a wrong diff_id"} {
		t.Run(damage, func(t *testing.T) {
			img := testImage(t)
			if damage == "a wrong diff_id" {
				img = withDiffID(t, img, 1, v1.Hash{Algorithm: "sha256", Hex: strings.Repeat("ab", 32)})
			}
			oci := filepath.Join(t.TempDir(), "oci")
			p, err := layout.Write(oci, empty.Index)
			if err != nil {
				t.Fatal(err)
			}
			if err := p.AppendImage(img); err != nil {
				t.Fatal(err)
			}
			ls, err := img.Layers()
			if err != nil {
				t.Fatal(err)
			}
			d, err := ls[1].Digest() // the middle layer
			if err != nil {
				t.Fatal(err)
			}
			blob := filepath.Join(oci, "blobs", d.Algorithm, d.Hex)
			b, err := os.ReadFile(blob)
			if err != nil {
				t.Fatal(err)
			}
			switch damage {
			case "a flipped byte":
				b[len(b)/2] ^= 0x40
				err = os.WriteFile(blob, b, 0o644)
			case "a missing blob":
				err = os.Remove(blob)
			case "a short blob":
				err = os.WriteFile(blob, b[:len(b)/2], 0o644)
			}
			if err != nil {
				t.Fatal(err)
			}
			s := openStore(t)
			_, err = s.Import("img", oci, ImportOptions{})
			if err == nil {
				t.Fatalf("an image with %s was imported", damage)
			}
			if !strings.Contains(err.Error(), "layer 2") && !strings.Contains(err.Error(), d.Hex) {
				t.Errorf("the error does not name the layer: %v", err)
			}
			if _, gerr := s.Get("img"); gerr == nil {
				t.Errorf("a base was made from an image with %s", damage)
			}
			assertEmpty(t, filepath.Join(s.Root, "tmp"))
		})
	}
}

// withDiffID is img with the config's diff_id of layer i set to h, its
// blobs as they are (and so of the digests the manifest gives).
func withDiffID(t *testing.T, img v1.Image, i int, h v1.Hash) v1.Image {
	t.Helper()
	cfg, err := img.ConfigFile()
	if err != nil {
		t.Fatal(err)
	}
	cfg = cfg.DeepCopy()
	cfg.RootFS.DiffIDs[i] = h
	out, err := mutate.ConfigFile(img, cfg)
	if err != nil {
		t.Fatal(err)
	}
	return out
}
