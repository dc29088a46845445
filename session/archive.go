package session

import (
	"archive/tar"
	"bytes"
	"encoding/json"
	"fmt"
	"io"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

// An OCI archive is a tar of an OCI image layout (image-spec,
// image-layout.md): oci-layout, the blobs under blobs/sha256/, and
// index.json naming the manifest. Beside it lies docker's manifest.json
// over the same blobs, as `docker save` (25 and later) writes it, so
// that docker load, podman load and skopeo (oci-archive:FILE) all take
// the one file.

// ExportBase writes base name to file as an OCI archive, its image
// tagged name:latest, atomically as ExportFile does. Every layer is
// packed here, pulled ones too: the file holds the whole image.
func (s *Store) ExportBase(name, file string, o ImageOptions) error {
	img, done, err := s.baseImage(name, o)
	if err != nil {
		return err
	}
	defer done()
	return writeAtomic(file, func(w io.Writer) error { return writeArchive(w, img, name) })
}

// writeArchive writes img, as name:latest, as an OCI archive with
// docker's manifest.json.
func writeArchive(w io.Writer, img v1.Image, name string) error {
	a := archive{tw: tar.NewWriter(w)}
	a.file("oci-layout", []byte(`{"imageLayoutVersion":"1.0.0"}`))
	// The directories too: an unpacker that makes missing ones itself
	// chowns them as root's, which an ordinary user's skopeo cannot.
	a.dir("blobs/")
	a.dir("blobs/sha256/")
	ls, err := img.Layers()
	if err != nil {
		return err
	}
	docker := dockerManifest{RepoTags: []string{name + ":latest"}}
	for _, l := range ls {
		docker.Layers = append(docker.Layers, a.layer(l))
	}
	cfg, err := img.RawConfigFile()
	if err != nil {
		return err
	}
	docker.Config = a.blob(cfg)
	manifest, err := img.RawManifest()
	if err != nil {
		return err
	}
	a.blob(manifest)
	a.json("index.json", layoutIndex(manifest, name))
	a.json("manifest.json", []dockerManifest{docker})
	if a.err != nil {
		return a.err
	}
	return a.tw.Close()
}

// dockerManifest is one image of docker's manifest.json.
type dockerManifest struct {
	Config   string
	RepoTags []string
	Layers   []string
}

// layoutIndex is the layout's index.json of one manifest, named as docker
// names what it saves: the tag as ref.name, the whole name for
// containerd.
func layoutIndex(manifest []byte, name string) v1.IndexManifest {
	d := v1.Descriptor{MediaType: types.OCIManifestSchema1, Size: int64(len(manifest)), Digest: digestOf(manifest),
		Annotations: map[string]string{"org.opencontainers.image.ref.name": "latest", "io.containerd.image.name": "docker.io/library/" + name + ":latest"}}
	return v1.IndexManifest{SchemaVersion: 2, MediaType: types.OCIImageIndex, Manifests: []v1.Descriptor{d}}
}

func digestOf(b []byte) v1.Hash {
	h, _, _ := v1.SHA256(bytes.NewReader(b))
	return h
}

// archive writes the archive's entries; its first error stops it.
type archive struct {
	tw  *tar.Writer
	err error
}

func (a *archive) header(name string, size int64) bool {
	if a.err == nil {
		a.err = a.tw.WriteHeader(&tar.Header{Typeflag: tar.TypeReg, Name: name, Mode: 0o644, Size: size})
	}
	return a.err == nil
}

func (a *archive) dir(name string) {
	if a.err == nil {
		a.err = a.tw.WriteHeader(&tar.Header{Typeflag: tar.TypeDir, Name: name, Mode: 0o755})
	}
}

func (a *archive) file(name string, data []byte) {
	if a.header(name, int64(len(data))) {
		_, a.err = a.tw.Write(data)
	}
}

func (a *archive) json(name string, v any) {
	data, err := json.Marshal(v)
	if err != nil && a.err == nil {
		a.err = err
	}
	a.file(name, data)
}

// blob writes data as a blob and returns its name.
func (a *archive) blob(data []byte) string {
	name := blobName(digestOf(data))
	a.file(name, data)
	return name
}

func (a *archive) layer(l v1.Layer) string {
	d, err := l.Digest()
	if err != nil {
		a.err = err
		return ""
	}
	size, err := l.Size()
	if err != nil {
		a.err = err
		return ""
	}
	name := blobName(d)
	if !a.header(name, size) {
		return name
	}
	rc, err := l.Compressed()
	if err != nil {
		a.err = err
		return name
	}
	defer rc.Close()
	if _, err := io.CopyN(a.tw, rc, size); err != nil {
		a.err = fmt.Errorf("layer %s: %w", d, err)
	}
	return name
}

func blobName(d v1.Hash) string { return "blobs/" + d.Algorithm + "/" + d.Hex }
