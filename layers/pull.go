package layers

import (
	"errors"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/remote"

	"github.com/incarnate-dev/incarnate/internal/faults"
	"github.com/incarnate-dev/incarnate/internal/progress"
	"github.com/incarnate-dev/incarnate/sandbox"
)

// A pulled image keeps its layers apart: each becomes one layer of the
// store, named by its diff_id, with its whiteouts and opaque directories
// turned into overlay's own markers. So a layer is stored once, however
// many bases have it, and a second pull of a related image fetches only
// the layers the store lacks. Layers are verified as they stream (blob
// digest and diff_id, oci_verify.go). A pull cut short leaves its
// finished layers, which a rerun takes up (SweepOrphans spares them for
// a day), and nothing half-made: a layer is unpacked in tmp/ and renamed
// into place whole.

// pulledPrefix starts the id of a layer named by its diff_id.
const pulledPrefix = "oci-"

// PullOptions shape a pull.
type PullOptions struct {
	ImportOptions
	// Remote are the transfer's options (internal/registry.Remote).
	Remote []remote.Option
}

// PulledLayerID is the id of the layer whose content has diffID.
func PulledLayerID(diffID v1.Hash) string {
	return pulledPrefix + diffID.Hex[:min(len(diffID.Hex), MaxNameLen-len(pulledPrefix))]
}

// Pull makes base name from the image ref names in a registry.
func (s *Store) Pull(name string, ref name.Reference, o PullOptions) (*Base, error) {
	if err := s.checkNewBase(name); err != nil {
		return nil, err
	}
	img, err := remote.Image(ref, o.Remote...)
	if err != nil {
		return nil, fmt.Errorf("pull %s: %w", ref, err)
	}
	layers, err := img.Layers()
	if err != nil {
		return nil, fmt.Errorf("pull %s: %w", ref, err)
	}
	if len(layers) == 0 {
		return nil, fmt.Errorf("pull %s: the image has no layers", ref)
	}
	s.SweepOrphans()
	b := &Base{Name: name, Source: ref.String(), Layers: make([]string, len(layers)), Origins: map[string]LayerOrigin{}}
	for i, l := range layers { // bottom first; a base lists its layers top first
		id, origin, err := s.pullLayer(ref.Context(), l, i+1, len(layers), o)
		if err != nil {
			s.release(b.Layers)
			return nil, fmt.Errorf("pull %s: %w", ref, err)
		}
		b.Layers[len(layers)-1-i] = id
		b.Origins[id] = origin
		faults.Point("pull-layer")
	}
	return s.addBase(b)
}

// pullLayer stores layer n of total, unless the store has it already,
// and returns its id and where it came from.
func (s *Store) pullLayer(repo name.Repository, l v1.Layer, n, total int, o PullOptions) (string, LayerOrigin, error) {
	origin, err := originOf(repo, l)
	if err != nil {
		return "", origin, fmt.Errorf("layer %d: %w", n, err)
	}
	diffID, _ := v1.NewHash(origin.DiffID)
	id := PulledLayerID(diffID)
	if s.reuseLayer(id) {
		return id, origin, nil
	}
	label := fmt.Sprintf("layer %d/%d %s", n, total, shortDigest(origin.Digest))
	id, err = s.newLayerAs(id, func(dst string) error {
		p := progress.New(o.Progress, label, origin.Size)
		defer p.Finish()
		return unpackLayer(countedBlob{Layer: l, p: p}, n, diffID, dst, o.ImportOptions)
	})
	return id, origin, err
}

// originOf is where l lies in repo.
func originOf(repo name.Repository, l v1.Layer) (LayerOrigin, error) {
	digest, err := l.Digest()
	if err != nil {
		return LayerOrigin{}, err
	}
	diffID, err := l.DiffID()
	if err != nil {
		return LayerOrigin{}, err
	}
	size, err := l.Size()
	if err != nil {
		return LayerOrigin{}, err
	}
	mt, err := l.MediaType()
	if err != nil {
		return LayerOrigin{}, err
	}
	return LayerOrigin{Repo: repo.String(), Digest: digest.String(), DiffID: diffID.String(), MediaType: string(mt), Size: size}, nil
}

func shortDigest(d string) string {
	if _, hex, ok := strings.Cut(d, ":"); ok && len(hex) > 12 {
		return hex[:12]
	}
	return d
}

// unpackLayer unpacks layer n, verified against its blob digest and the
// config's diffID, into dst as an overlay layer:
// its OCI whiteouts become overlay's markers of the kind this user's
// sessions read (trusted.overlay.* for root, user.overlay.* otherwise).
func unpackLayer(l v1.Layer, n int, diffID v1.Hash, dst string, o ImportOptions) error {
	check := &layerCheck{}
	rc, err := verifiedUncompressed(l, n, diffID, check)
	if err != nil {
		return err
	}
	rootless := sandbox.Rootless()
	xo := extractOptions{privileged: !rootless, subIDs: rootless && os.Geteuid() == 0, warn: o.Warn, danglingLinks: true, whiteouts: overlayPrefix(rootless)}
	err = extractTar(rc, dst, xo)
	if errors.Is(err, errEmptyArchive) {
		err = nil // a layer may hold nothing (a step that only set metadata)
	}
	if cerr := rc.Close(); cerr != nil {
		return cerr // the blob's check comes first: a damaged blob explains a broken tar
	}
	if err != nil {
		return err
	}
	return syncFS(dst)
}

// overlayPrefix is the xattr namespace of overlay's markers in the
// layers of a user of this kind.
func overlayPrefix(rootless bool) string {
	if rootless {
		return "user.overlay."
	}
	return "trusted.overlay."
}

// countedBlob counts what is read of a layer's blob on a progress line.
type countedBlob struct {
	v1.Layer
	p *progress.Line
}

func (c countedBlob) Compressed() (io.ReadCloser, error) {
	rc, err := c.Layer.Compressed()
	if err != nil {
		return nil, err
	}
	return struct {
		io.Reader
		io.Closer
	}{c.p.Reader(rc), rc}, nil
}

// PullName names the base a pull of ref makes when not told: the
// repository's last part, and its tag unless "latest" ("debian-12"), or
// the digest's start.
func PullName(ref name.Reference) string {
	repo := ref.Context().RepositoryStr()
	n := repo[strings.LastIndexByte(repo, '/')+1:]
	switch r := ref.(type) {
	case name.Tag:
		if r.TagStr() != "latest" {
			n += "-" + r.TagStr()
		}
	case name.Digest:
		if _, hex, ok := strings.Cut(r.DigestStr(), ":"); ok {
			n += "-" + hex[:min(12, len(hex))]
		}
	}
	var b strings.Builder
	for i, ch := range n {
		ok := ch >= 'a' && ch <= 'z' || ch >= 'A' && ch <= 'Z' || ch >= '0' && ch <= '9' || i > 0 && (ch == '.' || ch == '_' || ch == '-')
		if !ok {
			ch = '-'
		}
		b.WriteRune(ch)
	}
	return b.String()[:min(b.Len(), MaxNameLen)]
}
