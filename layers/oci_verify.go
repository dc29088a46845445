package layers

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"hash"
	"io"
	"sync"

	v1 "github.com/google/go-containerregistry/pkg/v1"
)

// An image from elsewhere is checked as it streams: each layer's blob
// against the digest its manifest names, and the blob's content against
// the diff_id its config names. go-containerregistry reads a layout's or
// an archive's blobs without either check, and mutate.Extract ends its
// tar stream as if whole when a layer fails (a missing blob imported as
// a truncated tree, with status 0). So every failure is also kept in a
// layerCheck, which flatten asks once the stream has ended.

// layerCheck collects the first failure of any layer, and how many layers
// were read and found right.
type layerCheck struct {
	mu   sync.Mutex
	err  error
	good int
}

func (c *layerCheck) fail(err error) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.err == nil {
		c.err = err
	}
	return err
}

// result is the first failure, or one for layers never read whole.
func (c *layerCheck) result(layers int) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.err == nil && c.good < layers {
		return fmt.Errorf("only %d of the image's %d layers were read whole", c.good, layers)
	}
	return c.err
}

// diffIDs are the diff_ids img's config names, one for each layer.
// They are taken from the config itself: a layer's own DiffID(), for a
// layout's or an archive's blob, is what go-containerregistry computes
// from the content, which would check the content against itself.
func diffIDs(img v1.Image, layers int) ([]v1.Hash, error) {
	cfg, err := img.ConfigFile()
	if err != nil {
		return nil, err
	}
	if ids := cfg.RootFS.DiffIDs; len(ids) != layers {
		return nil, fmt.Errorf("the image's config names %d diff_ids for its %d layers: the image is damaged", len(ids), layers)
	}
	return cfg.RootFS.DiffIDs, nil
}

// verifiedUncompressed opens layer n (1 = the bottom) from its blob and
// returns its content, checked at its end (or when closed early) against
// the blob's digest and diffID.
func verifiedUncompressed(l v1.Layer, n int, diffID v1.Hash, check *layerCheck) (io.ReadCloser, error) {
	name := fmt.Sprintf("layer %d", n)
	digest, err := l.Digest()
	if err != nil {
		return nil, check.fail(fmt.Errorf("%s: %w", name, err))
	}
	name = fmt.Sprintf("layer %d (%s)", n, digest)
	if digest.Algorithm != "sha256" || diffID.Algorithm != "sha256" {
		return nil, check.fail(fmt.Errorf("%s: only sha256 digests are checked, not %s", name, digest.Algorithm))
	}
	blob, err := l.Compressed()
	if err != nil {
		return nil, check.fail(fmt.Errorf("%s: %w", name, err))
	}
	v := &verifiedReader{name: name, blob: blob, check: check, blobSum: sha256.New(), contentSum: sha256.New(),
		wantBlob: digest.Hex, wantContent: diffID.Hex}
	content, _, err := decompress(io.TeeReader(blob, v.blobSum))
	if err != nil {
		blob.Close()
		return nil, check.fail(fmt.Errorf("%s: %w", name, err))
	}
	v.content = content
	return v, nil
}

type verifiedReader struct {
	name                  string
	blob                  io.ReadCloser
	content               io.ReadCloser
	blobSum, contentSum   hash.Hash
	wantBlob, wantContent string
	check                 *layerCheck
	done                  bool
}

func (v *verifiedReader) Read(p []byte) (int, error) {
	n, err := v.content.Read(p)
	v.contentSum.Write(p[:n])
	switch {
	case err == io.EOF:
		if verr := v.verify(); verr != nil {
			return n, verr
		}
	case err != nil:
		return n, v.check.fail(fmt.Errorf("%s: %w", v.name, err))
	}
	return n, err
}

// verify reads what is left of the layer (a tar ends before its blob
// does: padding, the compressor's trailer) and compares both sums.
func (v *verifiedReader) verify() error {
	if v.done {
		return nil
	}
	v.done = true
	if _, err := io.Copy(v.contentSum, v.content); err != nil {
		return v.check.fail(fmt.Errorf("%s: %w", v.name, err))
	}
	if _, err := io.Copy(v.blobSum, v.blob); err != nil {
		return v.check.fail(fmt.Errorf("%s: %w", v.name, err))
	}
	if got := hex.EncodeToString(v.blobSum.Sum(nil)); got != v.wantBlob {
		return v.check.fail(fmt.Errorf("%s: the blob's sha256 is %s, not the digest the manifest names: the image is damaged or was tampered with", v.name, got))
	}
	if got := hex.EncodeToString(v.contentSum.Sum(nil)); got != v.wantContent {
		return v.check.fail(fmt.Errorf("%s: its content's sha256 is %s, not the diff_id the config names: the image is damaged or was tampered with", v.name, got))
	}
	v.check.mu.Lock()
	v.check.good++
	v.check.mu.Unlock()
	return nil
}

// Close checks a layer its reader stopped short of, then closes it.
func (v *verifiedReader) Close() error {
	err := v.verify()
	v.content.Close()
	if cerr := v.blob.Close(); err == nil {
		err = cerr
	}
	return err
}
