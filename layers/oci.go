package layers

import (
	"archive/tar"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"strings"

	"app/incarnate/internal/fsutil"
)

// Image archives and layouts are read here by hand rather than with
// go-containerregistry (which the tests use to write them): linking it in
// costs every start of the binary, the sandbox stage's included, some
// 2.5 ms of package initialisation (regexp compiles, digest tables),
// several times what the rest of incarnate takes. Reading needs little:
// index.json or manifest.json, then the layer blobs, in order. Digests
// are not verified: the archive is a local file the user chose, and its
// compression and tar framing catch a truncated copy.

// imageFiles opens the files of an image by their name in the layout or
// archive ("index.json", "blobs/sha256/...", "<id>/layer.tar").
type imageFiles interface {
	open(name string) (io.ReadCloser, int64, error)
}

// dirFiles are the files of an OCI layout directory.
type dirFiles string

func (d dirFiles) open(name string) (io.ReadCloser, int64, error) {
	rel, err := entryPath(name)
	if err != nil {
		return nil, 0, err
	}
	f, err := os.Open(filepath.Join(string(d), rel))
	if err != nil {
		return nil, 0, err
	}
	fi, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, 0, err
	}
	return f, fi.Size(), nil
}

// readJSON decodes the image file name into v.
func readJSON(files imageFiles, name string, v any) error {
	rc, _, err := files.open(name)
	if err != nil {
		return err
	}
	defer rc.Close()
	if err := json.NewDecoder(io.LimitReader(rc, 16<<20)).Decode(v); err != nil {
		return fmt.Errorf("%s: %w", name, err)
	}
	return nil
}

// imageLayers lists the layer files of the one image in files, bottom
// first: from manifest.json for "docker save" (docker 25 and later write
// an OCI layout beside it), else from the OCI index.json.
func imageLayers(files imageFiles) ([]string, error) {
	var docker []struct{ Layers []string }
	err := readJSON(files, "manifest.json", &docker)
	if err == nil {
		if len(docker) != 1 {
			return nil, fmt.Errorf("the archive holds %d images; save just the one to import (docker save IMAGE)", len(docker))
		}
		return docker[0].Layers, nil
	}
	if !errors.Is(err, os.ErrNotExist) {
		return nil, err
	}
	m, err := pickImage(files, "index.json", nil)
	if err != nil {
		return nil, err
	}
	layers := make([]string, len(m.Layers))
	for i, d := range m.Layers {
		if layers[i], err = blobName(d.Digest); err != nil {
			return nil, err
		}
	}
	return layers, nil
}

// descriptor and ociDoc hold what is read of OCI descriptors, image
// indexes and image manifests.
type descriptor struct {
	Digest   string `json:"digest"`
	Platform *struct {
		OS           string `json:"os"`
		Architecture string `json:"architecture"`
	} `json:"platform,omitempty"`
}

type ociDoc struct {
	Manifests []descriptor `json:"manifests"` // an index
	Layers    []descriptor `json:"layers"`    // an image manifest
}

// pickImage reads the index (or manifest) in file name and returns the
// image manifest to import: the only one, or the one for linux/GOARCH
// in a multi-platform index. Nested indexes are followed.
func pickImage(files imageFiles, name string, d *descriptor) (*ociDoc, error) {
	var doc ociDoc
	if err := readJSON(files, name, &doc); err != nil {
		return nil, err
	}
	if len(doc.Manifests) == 0 {
		if d == nil {
			return nil, fmt.Errorf("%s lists no image", name)
		}
		return &doc, nil
	}
	pick := doc.Manifests
	if len(pick) > 1 {
		pick = nil
		for _, m := range doc.Manifests {
			if m.Platform != nil && m.Platform.OS == "linux" && m.Platform.Architecture == runtime.GOARCH {
				pick = append(pick, m)
			}
		}
	}
	if len(pick) != 1 {
		return nil, fmt.Errorf("%s lists %d images, %d for linux/%s; copy out the one to import first (skopeo copy --override-arch ...)",
			name, len(doc.Manifests), len(pick), runtime.GOARCH)
	}
	blob, err := blobName(pick[0].Digest)
	if err != nil {
		return nil, err
	}
	return pickImage(files, blob, &pick[0])
}

// blobName is where an OCI layout keeps the blob of digest
// ("sha256:abc..." is blobs/sha256/abc...).
func blobName(digest string) (string, error) {
	alg, hex, ok := strings.Cut(digest, ":")
	if !ok || alg == "" || hex == "" || strings.ContainsAny(digest, "/\\") || strings.Contains(digest, "..") {
		return "", fmt.Errorf("invalid digest %q", digest)
	}
	return "blobs/" + alg + "/" + hex, nil
}

// flatten unpacks the image's layers (bottom first) into dst as one
// tree. They are read upper first, so nothing is ever deleted: an entry
// is unpacked unless a layer above gave the same path, deleted it or a
// parent (".wh.NAME"), replaced a parent by a non-directory, or made a
// parent opaque (".wh..wh..opq"). The whiteout files themselves are not
// unpacked. Reads of the blobs are counted for the progress line.
func flatten(files imageFiles, layers []string, dst string, o ImportOptions, xo extractOptions) error {
	total := int64(0)
	for _, l := range layers {
		rc, size, err := files.open(l)
		if err != nil {
			return fmt.Errorf("layer %s: %w", l, err)
		}
		rc.Close()
		total += size
	}
	p := newProgress(o.Progress, "unpacking layers", total)
	defer p.finish()
	xo.danglingLinks = true
	x, err := newExtractor(dst, xo)
	if err != nil {
		return err
	}
	defer x.close()
	w := whiteouts{given: map[string]bool{}, opaque: map[string]bool{}}
	for i := len(layers) - 1; i >= 0; i-- {
		if err := w.unpackLayer(files, layers[i], x, p); err != nil {
			return fmt.Errorf("layer %s: %w", layers[i], err)
		}
	}
	return x.finish()
}

// whiteouts is what the layers read so far (the upper ones) decided.
type whiteouts struct {
	// given maps each path an upper layer gave or deleted to whether it
	// hides what lower layers have below it (a deletion, a non-directory).
	given  map[string]bool
	opaque map[string]bool // directories whose lower content is hidden
}

func (w *whiteouts) unpackLayer(files imageFiles, name string, x *extractor, p *progress) error {
	rc, _, err := files.open(name)
	if err != nil {
		return err
	}
	defer rc.Close()
	r, _, err := decompress(p.reader(rc))
	if err != nil {
		return err
	}
	defer r.Close()
	opaque := map[string]bool{} // hides lower layers only: applied after this one
	tr := tar.NewReader(r)
	for {
		hdr, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			return fmt.Errorf("read layer: %w", err)
		}
		rel, err := entryPath(hdr.Name)
		if err != nil {
			return err
		}
		dir, base := splitPath(rel)
		if base == ".wh..wh..opq" {
			opaque[dir] = true
			continue
		}
		if gone, ok := strings.CutPrefix(base, ".wh."); ok {
			if p := joinPath(dir, gone); !w.hidden(p) {
				w.given[p] = true
			}
			continue
		}
		if _, ok := w.given[rel]; ok || w.hidden(rel) {
			continue
		}
		w.given[rel] = hdr.Typeflag != tar.TypeDir
		if err := x.entry(hdr, tr); err != nil {
			return err
		}
	}
	for d := range opaque {
		w.opaque[d] = true
	}
	// Read to the end, so that the progress line counts the whole blob.
	_, err = io.Copy(io.Discard, r)
	return err
}

// hidden reports whether an upper layer hides rel through one of its
// parents.
func (w *whiteouts) hidden(rel string) bool {
	for rel != "" {
		rel, _ = splitPath(rel)
		if w.given[rel] || w.opaque[rel] {
			return true
		}
	}
	return false
}

func joinPath(dir, base string) string {
	if dir == "" {
		return base
	}
	return dir + "/" + base
}

// importImageArchive unpacks an image archive: a "docker save" tarball
// or an OCI archive (an OCI layout in a tar). A compressed one is
// decompressed into scratch first: its files are read out of order.
func importImageArchive(src, compression, dst string, scratch *fsutil.Workspace, o ImportOptions, xo extractOptions) error {
	archive := src
	if compression != "" {
		archive = scratch.Path("archive.tar")
		if err := decompressTo(src, archive, o); err != nil {
			return err
		}
	}
	files, err := indexTar(archive)
	if err != nil {
		return err
	}
	defer files.close()
	layers, err := imageLayers(files)
	if err != nil {
		return err
	}
	return flatten(files, layers, dst, o, xo)
}

// importLayout unpacks the image of the OCI layout in dir.
func importLayout(dir, dst string, o ImportOptions, xo extractOptions) error {
	layers, err := imageLayers(dirFiles(dir))
	if err != nil {
		return err
	}
	return flatten(dirFiles(dir), layers, dst, o, xo)
}

// decompressTo writes src's content uncompressed to dst.
func decompressTo(src, dst string, o ImportOptions) error {
	f, err := openCounted(o, "decompressing "+filepath.Base(src), src)
	if err != nil {
		return err
	}
	defer f.Close()
	defer f.p.finish()
	zr, _, err := decompress(f)
	if err != nil {
		return err
	}
	defer zr.Close()
	out, err := os.OpenFile(dst, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return err
	}
	_, err = io.Copy(out, zr)
	if cerr := out.Close(); err == nil {
		err = cerr
	}
	return err
}

// countedFile counts reads for a progress line.
type countedFile struct {
	f *os.File
	p *progress
}

func (c *countedFile) Read(b []byte) (int, error) {
	n, err := c.f.Read(b)
	c.p.add(n)
	return n, err
}

func (c *countedFile) Close() error { return c.f.Close() }

// openCounted opens path for reading, its reads counted against its
// size on a progress line (f.p, nil without a terminal).
func openCounted(o ImportOptions, label, path string) (*countedFile, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	fi, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, err
	}
	return &countedFile{f: f, p: newProgress(o.Progress, label, fi.Size())}, nil
}
