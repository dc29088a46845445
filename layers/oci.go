package layers

import (
	"archive/tar"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"runtime"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/tarball"

	"github.com/incarnate-dev/incarnate/internal/fsutil"
	"github.com/incarnate-dev/incarnate/internal/progress"
)

// Images are read with go-containerregistry: layouts with layout,
// "docker save" archives with tarball, and the layers are flattened with
// their whiteouts and opaque markers by mutate.Extract, which also drops
// entries whose paths or link targets climb out of the root. Linking it
// costs every start of the binary about 2.5 ms (go-digest and ggcr's
// name package compile regexps at init; 55 more page faults, some 30 us
// each on this VM). An earlier reader of our own avoided that, but the
// library is what people trust to get image formats right.

// importImageArchive unpacks an image archive: a "docker save" tarball
// or an OCI archive (an OCI layout in a tar). A compressed one is
// decompressed into scratch first, as tarball reads it out of order, and
// an OCI archive is unpacked there: layout reads only directories.
func importImageArchive(src, compression, dst string, scratch *fsutil.Workspace, o ImportOptions, xo extractOptions) error {
	archive := src
	if compression != "" {
		archive = scratch.Path("archive.tar")
		if err := decompressTo(src, archive, o); err != nil {
			return err
		}
	}
	docker, err := tarHolds(archive, "manifest.json")
	if err != nil {
		return err
	}
	if docker {
		img, err := dockerImage(archive)
		if err != nil {
			return err
		}
		return flatten(img, dst, o, xo)
	}
	dir := scratch.Path("layout")
	if err := unpackArchive(archive, dir); err != nil {
		return err
	}
	return importLayout(dir, dst, o, xo)
}

// importLayout unpacks the image of the OCI layout in dir.
func importLayout(dir, dst string, o ImportOptions, xo extractOptions) error {
	idx, err := layout.ImageIndexFromPath(dir)
	if err != nil {
		return err
	}
	img, err := pickImage(idx, "index.json")
	if err != nil {
		return err
	}
	return flatten(img, dst, o, xo)
}

// tarHolds reports whether the archive has an entry called name at its
// top. Only headers are read: archive/tar seeks over the contents.
func tarHolds(archive, name string) (bool, error) {
	f, err := os.Open(archive)
	if err != nil {
		return false, err
	}
	defer f.Close()
	tr := tar.NewReader(f)
	for {
		hdr, err := tr.Next()
		if err == io.EOF {
			return false, nil
		}
		if err != nil {
			return false, fmt.Errorf("%s: %w", archive, err)
		}
		if rel, err := entryPath(hdr.Name); err == nil && rel == name {
			return true, nil
		}
	}
}

// dockerImage is the one image of a "docker save" archive.
func dockerImage(archive string) (v1.Image, error) {
	open := func() (io.ReadCloser, error) { return os.Open(archive) }
	m, err := tarball.LoadManifest(open)
	if err != nil {
		return nil, err
	}
	if len(m) != 1 {
		return nil, fmt.Errorf("the archive holds %d images; save just the one to import (docker save IMAGE)", len(m))
	}
	return tarball.Image(open, nil)
}

// unpackArchive unpacks an OCI archive's layout into dir. Its files are
// the layout's own, so owners and modes do not matter.
func unpackArchive(archive, dir string) error {
	f, err := os.Open(archive)
	if err != nil {
		return err
	}
	defer f.Close()
	return extractTar(f, dir, extractOptions{})
}

// pickImage returns the image to import from an index (what names it):
// the only one, or the one for linux/GOARCH in a multi-platform index.
// Nested indexes are followed.
func pickImage(idx v1.ImageIndex, what string) (v1.Image, error) {
	m, err := idx.IndexManifest()
	if err != nil {
		return nil, fmt.Errorf("%s: %w", what, err)
	}
	pick := m.Manifests
	if len(pick) == 0 {
		return nil, fmt.Errorf("%s lists no image", what)
	}
	if len(pick) > 1 {
		pick = nil
		for _, d := range m.Manifests {
			if d.Platform != nil && d.Platform.OS == "linux" && d.Platform.Architecture == runtime.GOARCH {
				pick = append(pick, d)
			}
		}
	}
	if len(pick) != 1 {
		return nil, fmt.Errorf("%s lists %d images, %d for linux/%s; copy out the one to import first (skopeo copy --override-arch ...)",
			what, len(m.Manifests), len(pick), runtime.GOARCH)
	}
	d := pick[0]
	if d.MediaType.IsIndex() {
		child, err := idx.ImageIndex(d.Digest)
		if err != nil {
			return nil, err
		}
		return pickImage(child, d.Digest.String())
	}
	return idx.Image(d.Digest)
}

// flatten unpacks the image's layers into dst as one tree. The stream
// lists upper layers first, so a hard link may come before the file it
// links to, or after a layer above deleted that file: the extractor
// waits for late targets and skips, with a warning, ones that never come.
func flatten(img v1.Image, dst string, o ImportOptions, xo extractOptions) error {
	layers, err := img.Layers()
	if err != nil {
		return err
	}
	p := progress.New(o.Progress, "unpacking layers", 0)
	defer p.Finish()
	p.CountLayers(len(layers))
	ids, err := diffIDs(img, len(layers))
	if err != nil {
		return err
	}
	check := &layerCheck{}
	counted := make([]v1.Layer, len(layers))
	for i, l := range layers {
		counted[i] = countedLayer{Layer: l, n: i + 1, diffID: ids[i], p: p, check: check}
	}
	rc := mutate.Extract(countedImage{Image: img, layers: counted})
	xo.danglingLinks = true
	err = extractTar(rc, dst, xo)
	rc.Close()
	// The stream's own end says nothing: a layer that failed ended it
	// early and cleanly (see oci_verify.go).
	if cerr := check.result(len(layers)); cerr != nil {
		return cerr
	}
	if errors.Is(err, errEmptyArchive) {
		err = errors.New("the image has no files")
	}
	return err
}

// countedImage and countedLayer count what mutate.Extract reads for the
// progress line: bytes, and layers read to the end.
type countedImage struct {
	v1.Image
	layers []v1.Layer
}

func (i countedImage) Layers() ([]v1.Layer, error) { return i.layers, nil }

type countedLayer struct {
	v1.Layer
	n      int     // 1 for the bottom layer
	diffID v1.Hash // as the config names it
	p      *progress.Line
	check  *layerCheck
}

func (l countedLayer) Uncompressed() (io.ReadCloser, error) {
	rc, err := verifiedUncompressed(l.Layer, l.n, l.diffID, l.check)
	if err != nil {
		return nil, err
	}
	return layerReader{Reader: l.p.Reader(rc), rc: rc, p: l.p}, nil
}

type layerReader struct {
	io.Reader
	rc io.Closer
	p  *progress.Line
}

func (r layerReader) Close() error {
	r.p.LayerDone()
	return r.rc.Close()
}

// decompressTo writes src's content uncompressed to dst.
func decompressTo(src, dst string, o ImportOptions) error {
	f, err := openCounted(o, "decompressing "+filepath.Base(src), src)
	if err != nil {
		return err
	}
	defer f.Close()
	defer f.p.Finish()
	zr, _, err := decompress(f)
	if err != nil {
		return err
	}
	defer zr.Close()
	out, err := os.OpenFile(dst, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return err
	}
	// A few KiB of xz can hold gigabytes of zeros: the store's file
	// system must not be filled by them.
	err = copyGuarded(out, zr, newSpaceGuard(int(out.Fd())), "the decompressed "+filepath.Base(src))
	if cerr := out.Close(); err == nil {
		err = cerr
	}
	return err
}

// countedFile counts reads for a progress line.
type countedFile struct {
	f *os.File
	p *progress.Line
}

func (c *countedFile) Read(b []byte) (int, error) {
	n, err := c.f.Read(b)
	c.p.Add(n)
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
	return &countedFile{f: f, p: progress.New(o.Progress, label, fi.Size())}, nil
}
