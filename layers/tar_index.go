package layers

import (
	"archive/tar"
	"fmt"
	"io"
	"os"
	"path"
)

// tarFiles are the files of an uncompressed tar archive, read in place:
// one pass over the headers (archive/tar seeks over the contents) notes
// where each file's bytes are, and open returns a section of the archive.
// An image archive's files are wanted out of order, and copying them out
// first would double the disk an import needs.
type tarFiles struct {
	f     *os.File
	files map[string]section
	links map[string]string // symlinks: docker save links a layer it already holds
}

type section struct{ off, size int64 }

func indexTar(archive string) (*tarFiles, error) {
	f, err := os.Open(archive)
	if err != nil {
		return nil, err
	}
	t := &tarFiles{f: f, files: map[string]section{}, links: map[string]string{}}
	tr := tar.NewReader(f)
	for {
		hdr, err := tr.Next()
		if err == io.EOF {
			return t, nil
		}
		if err != nil {
			f.Close()
			return nil, fmt.Errorf("%q: %w", archive, err)
		}
		rel, err := entryPath(hdr.Name)
		if err != nil {
			continue // never opened: imageLayers only asks for clean names
		}
		switch hdr.Typeflag {
		case tar.TypeReg:
			// archive/tar has read the header and nothing more: the file
			// offset is where the content starts.
			off, err := f.Seek(0, io.SeekCurrent)
			if err != nil {
				f.Close()
				return nil, err
			}
			t.files[rel] = section{off, hdr.Size}
		case tar.TypeSymlink, tar.TypeLink:
			target := hdr.Linkname
			if hdr.Typeflag == tar.TypeSymlink {
				target = path.Join(path.Dir(rel), target)
			}
			t.links[rel] = target
		}
	}
}

func (t *tarFiles) open(name string) (io.ReadCloser, int64, error) {
	rel, err := entryPath(name)
	for hops := 0; err == nil && hops < 8; hops++ {
		if s, ok := t.files[rel]; ok {
			return io.NopCloser(io.NewSectionReader(t.f, s.off, s.size)), s.size, nil
		}
		target, ok := t.links[rel]
		if !ok {
			return nil, 0, &os.PathError{Op: "open", Path: name, Err: os.ErrNotExist}
		}
		rel, err = entryPath(target)
	}
	if err == nil {
		err = fmt.Errorf("%s: too many links", name)
	}
	return nil, 0, err
}

func (t *tarFiles) close() { t.f.Close() }
