package layers

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"runtime"
	"sort"
	"strings"
	"testing"
)

// memFiles is an image held in memory, by file name.
type memFiles map[string][]byte

func (m memFiles) open(name string) (io.ReadCloser, int64, error) {
	b, ok := m[name]
	if !ok {
		return nil, 0, &os.PathError{Op: "open", Path: name, Err: os.ErrNotExist}
	}
	return io.NopCloser(bytes.NewReader(b)), int64(len(b)), nil
}

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
		{"opaque root", [][]entry{{file("x", "1")}, {file(".wh..wh..opq", ""), file("y", "2")}}, "y=2", ""},
		{"upper file wins", [][]entry{{file("a", "lower")}, {file("a", "upper")}}, "a=upper", ""},
		{"link to a deleted name", [][]entry{{file("f", "1"), hardlink("g", "f")}, {file(".wh.f", "")}}, "", "skipped hard links to names an upper layer deleted: g"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			files := memFiles{}
			var names []string
			for i, l := range tt.layers {
				name := "layer" + string(rune('0'+i))
				files[name] = makeTar(t, l...)
				names = append(names, name)
			}
			dst := filepath.Join(t.TempDir(), "dst")
			var warnings []string
			xo := extractOptions{warn: func(m string) { warnings = append(warnings, m) }}
			if err := flatten(files, names, dst, ImportOptions{}, xo); err != nil {
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

func jsonBytes(t *testing.T, v any) []byte {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestImageLayers(t *testing.T) {
	platform := func(arch, digest string) map[string]any {
		return map[string]any{"digest": digest, "platform": map[string]string{"os": "linux", "architecture": arch}}
	}
	other := "arm64"
	if runtime.GOARCH == "arm64" {
		other = "amd64"
	}
	manifest := func(layers ...string) []byte {
		var ds []map[string]string
		for _, l := range layers {
			ds = append(ds, map[string]string{"digest": l})
		}
		return jsonBytes(t, map[string]any{"layers": ds})
	}
	multi := memFiles{
		"index.json":          jsonBytes(t, map[string]any{"manifests": []map[string]string{{"digest": "sha256:list"}}}),
		"blobs/sha256/list":   jsonBytes(t, map[string]any{"manifests": []any{platform(other, "sha256:theirs"), platform(runtime.GOARCH, "sha256:mine"), map[string]any{"digest": "sha256:att", "platform": map[string]string{"os": "unknown", "architecture": "unknown"}}}}),
		"blobs/sha256/mine":   manifest("sha256:l1", "sha256:l2"),
		"blobs/sha256/theirs": manifest("sha256:x"),
	}
	tests := []struct {
		name  string
		files memFiles
		want  string
		err   string
	}{
		{"docker save", memFiles{"manifest.json": []byte(`[{"Config":"c.json","Layers":["a/layer.tar","b/layer.tar"]}]`)}, "a/layer.tar b/layer.tar", ""},
		{"docker save of two images", memFiles{"manifest.json": []byte(`[{"Layers":["a"]},{"Layers":["b"]}]`)}, "", "holds 2 images"},
		{"multi-platform OCI", multi, "blobs/sha256/l1 blobs/sha256/l2", ""},
		{"a digest that climbs", memFiles{"index.json": []byte(`{"manifests":[{"digest":"sha256:../../etc"}]}`)}, "", "invalid digest"},
		{"no image", memFiles{"index.json": []byte(`{"manifests":[]}`)}, "", "lists no image"},
		{"neither", memFiles{}, "", "index.json"},
	}
	for _, tt := range tests {
		got, err := imageLayers(tt.files)
		if tt.err != "" {
			if err == nil || !strings.Contains(err.Error(), tt.err) {
				t.Errorf("%s: %v, %v; want an error saying %q", tt.name, got, err, tt.err)
			}
			continue
		}
		if err != nil || strings.Join(got, " ") != tt.want {
			t.Errorf("%s: %v, %v; want %s", tt.name, got, err, tt.want)
		}
	}
}

// docker save (before docker 25) writes a layer it already holds as a
// symlink to the first copy.
func TestTarFilesFollowLinks(t *testing.T) {
	archive := makeTar(t, file("a/layer.tar", "bytes"), symlink("b/layer.tar", "../a/layer.tar"), file("c", "x"))
	path := writeFile(t, filepath.Join(t.TempDir(), "x.tar"), archive)
	files, err := indexTar(path)
	if err != nil {
		t.Fatal(err)
	}
	defer files.close()
	for name, want := range map[string]string{"a/layer.tar": "bytes", "b/layer.tar": "bytes", "./c": "x"} {
		rc, size, err := files.open(name)
		if err != nil {
			t.Errorf("open %s: %v", name, err)
			continue
		}
		b, _ := io.ReadAll(rc)
		if string(b) != want || size != int64(len(want)) {
			t.Errorf("open %s: %q (size %d), want %q", name, b, size, want)
		}
	}
	if _, _, err := files.open("missing"); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("open missing: %v, want ErrNotExist", err)
	}
}
