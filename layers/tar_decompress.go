package layers

import (
	"bufio"
	"bytes"
	"compress/bzip2"
	"compress/gzip"
	"io"

	"github.com/klauspost/compress/zstd"
	"github.com/ulikunitz/xz"
)

// Magic numbers of the compressions a rootfs tarball or an image layer
// comes in. The content decides, not the file name: a ".tar" that is
// really gzip (or a ".tgz" that is not) still imports.
var (
	magicGzip  = []byte{0x1f, 0x8b}
	magicZstd  = []byte{0x28, 0xb5, 0x2f, 0xfd}
	magicXz    = []byte{0xfd, '7', 'z', 'X', 'Z', 0x00}
	magicBzip2 = []byte("BZh")
)

// decompress returns r's content uncompressed, whichever of gzip, zstd,
// xz or bzip2 it is in, or as it is. The name of the compression ("" for
// none) is returned too. Closing the result does not close r.
func decompress(r io.Reader) (io.ReadCloser, string, error) {
	br := bufio.NewReaderSize(r, 64<<10)
	head, err := br.Peek(6)
	if err != nil && err != io.EOF {
		return nil, "", err
	}
	switch {
	case bytes.HasPrefix(head, magicGzip):
		zr, err := gzip.NewReader(br)
		return zr, "gzip", err
	case bytes.HasPrefix(head, magicZstd):
		zr, err := zstd.NewReader(br)
		if err != nil {
			return nil, "", err
		}
		return zr.IOReadCloser(), "zstd", nil
	case bytes.HasPrefix(head, magicXz):
		zr, err := xz.NewReader(br)
		return io.NopCloser(zr), "xz", err
	case bytes.HasPrefix(head, magicBzip2):
		return io.NopCloser(bzip2.NewReader(br)), "bzip2", nil
	}
	return io.NopCloser(br), "", nil
}
