package session

import (
	"crypto/sha256"
	"fmt"
	"hash"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/partial"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/types"
	"github.com/klauspost/compress/gzip"
	"github.com/klauspost/compress/zstd"

	"github.com/incarnate-dev/incarnate/internal/fsutil"
	"github.com/incarnate-dev/incarnate/internal/progress"
	"github.com/incarnate-dev/incarnate/layers"
)

// A base as an OCI image (push, export): one OCI layer for each of its
// layers, bottom first, and a config that records the diff_ids, a
// history entry for each layer (the import, pull or commit that made
// it, and when), linux on this machine's architecture (the base's
// programs run here, natively) and the user's labels. A layer is packed
// into a blob in the store's tmp/ first, as its digest must be known
// before the manifest is; the packing is deterministic, so an unchanged
// layer packs to the same blob again and a second push finds it there.

// Compressions are the layer compressions a push or an export offers.
var Compressions = []string{"gzip", "zstd"}

// ImageOptions shape a base's image.
type ImageOptions struct {
	Compression string // one of Compressions; "" is gzip
	Labels      map[string]string
	// Progress, when set, gets a progress line for each layer packed.
	Progress io.Writer
	// reuse says whether a pulled layer's blob, where it lies in the
	// registry, may stand for the layer (push: on the same registry).
	reuse func(layers.LayerOrigin) (name.Digest, bool)
	// remote are the options to read such a blob with.
	remote []remote.Option
	// uploads, when set, gets a progress line for each blob sent.
	uploads io.Writer
}

// baseImage is base name's image; done removes its packed blobs.
func (s *Store) baseImage(name string, o ImageOptions) (img v1.Image, done func(), err error) {
	b, err := s.Layers.Get(name)
	if err != nil {
		return nil, nil, err
	}
	if err := checkShareable(b); err != nil {
		return nil, nil, err
	}
	all, err := s.Layers.List()
	if err != nil {
		return nil, nil, err
	}
	ws, err := fsutil.NewWorkspace(filepath.Join(s.Layers.Root, "tmp"), "image-")
	if err != nil {
		return nil, nil, err
	}
	done = func() { ws.Discard() }
	adds := make([]mutate.Addendum, 0, len(b.Layers))
	for i := len(b.Layers) - 1; i >= 0; i-- {
		id, n := b.Layers[i], len(b.Layers)-i
		l, err := s.imageLayer(b, id, ws.Path(fmt.Sprint(n)), n, o)
		if err != nil {
			done()
			return nil, nil, fmt.Errorf("base %s, layer %s: %w", name, id, err)
		}
		adds = append(adds, mutate.Addendum{Layer: l, History: layerHistory(id, all)})
	}
	img, err = imageOf(b, adds, o.Labels)
	if err != nil {
		done()
		return nil, nil, err
	}
	return img, done, nil
}

// checkShareable refuses the host base, and bases on it: the machine's
// own / is no layer anyone else could use.
func checkShareable(b *layers.Base) error {
	if b.Builtin() || slices.Contains(b.Layers, layers.HostLayer) {
		what := "base " + b.Name + " stands on the host base"
		if b.Builtin() {
			what = "the host base is this machine's own /"
		}
		return fmt.Errorf("%s, which is not an image anyone else can use: commit your session onto an imported base instead (incarnate base import NAME ROOTFS, or incarnate base pull debian:12; then incarnate new --base NAME, commit, and push that)", what)
	}
	return nil
}

// imageOf puts the layers together with b's config.
func imageOf(b *layers.Base, adds []mutate.Addendum, labels map[string]string) (v1.Image, error) {
	img := mutate.ConfigMediaType(mutate.MediaType(empty.Image, types.OCIManifestSchema1), types.OCIConfigJSON)
	img, err := mutate.Append(img, adds...)
	if err != nil {
		return nil, err
	}
	cfg, err := img.ConfigFile()
	if err != nil {
		return nil, err
	}
	cfg = cfg.DeepCopy()
	cfg.OS, cfg.Architecture = "linux", runtime.GOARCH
	cfg.Created = v1.Time{Time: b.Created}
	cfg.Config.Labels = labels
	return mutate.ConfigFile(img, cfg)
}

// layerHistory says what made layer id: the base it is the top of
// records the import, pull or commit, and when.
func layerHistory(id string, all []*layers.Base) v1.History {
	for _, b := range all {
		if len(b.Layers) == 0 || b.Layers[0] != id {
			continue
		}
		h := v1.History{Created: v1.Time{Time: b.Created}, CreatedBy: "incarnate base import " + b.Source}
		if s, ok := strings.CutPrefix(b.Source, commitSource); ok {
			h.CreatedBy = "incarnate commit " + s + " " + b.Name
			h.Comment = fmt.Sprintf("session %s committed as base %s", s, b.Name)
		} else if len(b.Origins) > 0 {
			h.CreatedBy = "incarnate base pull " + b.Source
		}
		return h
	}
	return v1.History{CreatedBy: "incarnate layer " + id}
}

// imageLayer is layer id of b, its n-th from the bottom: its blob in
// the registry where o allows, else packed into file.
func (s *Store) imageLayer(b *layers.Base, id, file string, n int, o ImageOptions) (v1.Layer, error) {
	label := fmt.Sprintf("layer %d/%d", n, len(b.Layers))
	if origin, ok := b.Origins[id]; ok && o.reuse != nil {
		if ref, ok := o.reuse(origin); ok {
			l, err := originLayer(origin, ref, o.remote)
			if err != nil {
				return nil, err
			}
			return &remote.MountableLayer{Layer: shownLayer{l, o.uploads, label}, Reference: ref}, nil
		}
	}
	prefix := trustedPrefix
	if b.Rootless {
		prefix = userPrefix
	}
	p := progress.New(o.Progress, "packing "+label, b.LayerSizes[id])
	l, err := packLayer(s.Layers.LayerDir(id), prefix, file, o.Compression, p)
	if err == nil {
		p.Complete()
	}
	p.Finish()
	return shownLayer{l, o.uploads, label}, err
}

// shownLayer draws a progress line of its blob as it is read (sent).
type shownLayer struct {
	v1.Layer
	w     io.Writer
	label string
}

func (l shownLayer) Compressed() (io.ReadCloser, error) {
	rc, err := l.Layer.Compressed()
	if err != nil || l.w == nil {
		return rc, err
	}
	size, _ := l.Size()
	d, _ := l.Digest()
	p := progress.New(l.w, l.label+" "+d.Hex[:min(12, len(d.Hex))], size)
	return &shownReader{Reader: p.Reader(rc), rc: rc, p: p}, nil
}

type shownReader struct {
	io.Reader
	rc io.Closer
	p  *progress.Line
}

func (r *shownReader) Close() error {
	r.p.Finish()
	return r.rc.Close()
}

// originLayer is the blob a layer was pulled from, at ref: remote.Write
// finds it there already, or mounts it from its repository (the layer
// being a MountableLayer), or else copies it from there.
func originLayer(o layers.LayerOrigin, ref name.Digest, opts []remote.Option) (v1.Layer, error) {
	blob := &remoteBlob{origin: o, ref: ref, opts: opts}
	var err error
	if blob.digest, err = v1.NewHash(o.Digest); err != nil {
		return nil, err
	}
	if blob.diffID, err = v1.NewHash(o.DiffID); err != nil {
		return nil, err
	}
	return partial.CompressedToLayer(blob)
}

type remoteBlob struct {
	origin         layers.LayerOrigin
	ref            name.Digest
	opts           []remote.Option
	digest, diffID v1.Hash
}

func (r *remoteBlob) Digest() (v1.Hash, error) { return r.digest, nil }
func (r *remoteBlob) DiffID() (v1.Hash, error) { return r.diffID, nil }
func (r *remoteBlob) Size() (int64, error)     { return r.origin.Size, nil }
func (r *remoteBlob) MediaType() (types.MediaType, error) {
	return types.MediaType(r.origin.MediaType), nil
}
func (r *remoteBlob) Compressed() (io.ReadCloser, error) {
	l, err := remote.Layer(r.ref, r.opts...)
	if err != nil {
		return nil, err
	}
	return l.Compressed()
}

// packLayer packs layer dir into file, compressed as comp, in one pass
// that hashes the tar (the diff_id) and the blob (the digest) as they
// are written.
func packLayer(dir, prefix, file, comp string, p *progress.Line) (v1.Layer, error) {
	f, err := os.OpenFile(file, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	blob := &fileBlob{path: file, mediaType: types.OCILayer}
	digest, diffID := sha256.New(), sha256.New()
	counted := &countWriter{w: io.MultiWriter(f, digest)}
	zw, err := compressor(counted, comp)
	if comp == "zstd" {
		blob.mediaType = types.OCILayerZStd
	}
	if err != nil {
		return nil, err
	}
	if err := LayerTar(io.MultiWriter(zw, diffID, progressWriter{p}), dir, prefix); err != nil {
		return nil, err
	}
	if err := zw.Close(); err != nil {
		return nil, err
	}
	blob.size, blob.digest, blob.diffID = counted.n, sum(digest), sum(diffID)
	if err := f.Close(); err != nil {
		return nil, err
	}
	return partial.CompressedToLayer(blob)
}

// compressor compresses to w. Both are deterministic for a given input
// (zstd with one goroutine: its output depends on how it splits work).
func compressor(w io.Writer, comp string) (io.WriteCloser, error) {
	switch comp {
	case "", "gzip":
		return gzip.NewWriterLevel(w, gzip.DefaultCompression)
	case "zstd":
		return zstd.NewWriter(w, zstd.WithEncoderConcurrency(1))
	}
	return nil, fmt.Errorf("compression %q: use %s", comp, strings.Join(Compressions, " or "))
}

func sum(h hash.Hash) v1.Hash {
	return v1.Hash{Algorithm: "sha256", Hex: fmt.Sprintf("%x", h.Sum(nil))}
}

type countWriter struct {
	w io.Writer
	n int64
}

func (c *countWriter) Write(b []byte) (int, error) {
	n, err := c.w.Write(b)
	c.n += int64(n)
	return n, err
}

type progressWriter struct{ p *progress.Line }

func (w progressWriter) Write(b []byte) (int, error) {
	w.p.Add(len(b))
	return len(b), nil
}

// fileBlob is a packed layer's blob in a file.
type fileBlob struct {
	path           string
	size           int64
	digest, diffID v1.Hash
	mediaType      types.MediaType
}

func (b *fileBlob) Digest() (v1.Hash, error)            { return b.digest, nil }
func (b *fileBlob) DiffID() (v1.Hash, error)            { return b.diffID, nil }
func (b *fileBlob) Size() (int64, error)                { return b.size, nil }
func (b *fileBlob) MediaType() (types.MediaType, error) { return b.mediaType, nil }
func (b *fileBlob) Compressed() (io.ReadCloser, error)  { return os.Open(b.path) }
