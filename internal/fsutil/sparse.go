package fsutil

import (
	"bytes"
	"io"
	"os"
)

// WriteSparse copies r into the new, empty file f with buf, leaving a
// hole wherever a whole block of buf's size is zeros: what an archive
// or image says is zeros (a sparse entry, a disk image) takes no disk.
// A 10 KiB tarball could otherwise write hundreds of megabytes.
func WriteSparse(f *os.File, r io.Reader, buf []byte) error {
	var off int64
	hole := false
	for {
		n, err := io.ReadFull(r, buf)
		if n > 0 {
			chunk := buf[:n]
			if isZero(chunk) {
				hole = true
			} else {
				if _, werr := f.WriteAt(chunk, off); werr != nil {
					return werr
				}
				hole = false
			}
			off += int64(n)
		}
		if err == io.EOF || err == io.ErrUnexpectedEOF {
			break
		}
		if err != nil {
			return err
		}
	}
	if hole {
		// Ending in a hole: the size is set, with no block written.
		return f.Truncate(off)
	}
	return nil
}

var zeros = make([]byte, 64<<10)

func isZero(b []byte) bool {
	for len(b) > 0 {
		n := min(len(b), len(zeros))
		if !bytes.Equal(b[:n], zeros[:n]) {
			return false
		}
		b = b[n:]
	}
	return true
}
