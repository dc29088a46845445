package session

import (
	"archive/tar"
	"io"
	"io/fs"
	"os"
	"slices"
	"strings"

	"golang.org/x/sys/unix"
)

// A layer of the store becomes one OCI layer as it is: every entry of
// its tree, the root included, with its owner (numeric), mode, times to
// the nanosecond and xattrs, hard links kept. Its overlay markers, of
// prefix, become the OCI ones: a whiteout (a 0/0 device, or an empty
// file marked overlay.whiteout in a directory marked "x") a ".wh."
// entry, an opaque directory ("y") itself followed by ".wh..wh..opq".
// Overlay's other xattrs (origin, impure, ...) say how this copy relates
// to its lowers on this machine, and are dropped (exportXattrs).

// LayerTar writes the layer tree dir, whose markers are of prefix
// ("trusted.overlay." or "user.overlay."), to w as an OCI layer.
func LayerTar(w io.Writer, dir, prefix string) error {
	changes, err := layerChanges(dir, prefix)
	if err != nil {
		return err
	}
	return writeChanges(&exporter{tw: tar.NewWriter(w), upper: dir, exact: true}, changes)
}

// layerChanges lists every entry of layer dir as the change it makes to
// the layers below it, in the order a tar must have.
func layerChanges(dir, prefix string) ([]Change, error) {
	d := &differ{format: format{prefix: prefix}, upper: dir, buf: make([]byte, 256)}
	root, err := openDir(unix.AT_FDCWD, dir, dir)
	if err != nil {
		return nil, err
	}
	defer root.Close()
	d.add("/", Added)
	return d.changes, d.layerDir(root, "")
}

// layerDir lists what directory f of the layer (path dir, "" for the
// root) holds, each directory followed by its own entries.
func (d *differ) layerDir(f *os.File, dir string) error {
	marks, err := d.xattr(int(f.Fd()), "opaque", d.upper+dir)
	if err != nil {
		return err
	}
	ents, err := f.ReadDir(-1)
	if err != nil {
		return err
	}
	slices.SortFunc(ents, func(a, b fs.DirEntry) int { return strings.Compare(a.Name(), b.Name()) })
	fd := int(f.Fd())
	for _, e := range ents {
		name, p := e.Name(), dir+"/"+e.Name()
		if !e.IsDir() {
			if err := d.layerFile(fd, name, p, marks == "x"); err != nil {
				return err
			}
			continue
		}
		if err := d.layerSubdir(fd, name, p); err != nil {
			return err
		}
	}
	return nil
}

// layerSubdir lists directory name of directory fd: replaced when it
// is opaque, then what it holds.
func (d *differ) layerSubdir(fd int, name, p string) error {
	sub, err := openDir(fd, name, d.upper+p)
	if err != nil {
		return err
	}
	defer sub.Close()
	opaque, err := d.xattr(int(sub.Fd()), "opaque", d.upper+p)
	if err != nil {
		return err
	}
	kind := Added
	if opaque == "y" {
		kind = Replaced
	}
	d.add(p, kind)
	return d.layerDir(sub, p)
}

// layerFile lists the non-directory name of directory fd, a whiteout as
// a deletion; xwh says the directory holds xattr whiteouts.
func (d *differ) layerFile(fd int, name, p string, xwh bool) error {
	var st unix.Stat_t
	if err := unix.Fstatat(fd, name, &st, unix.AT_SYMLINK_NOFOLLOW); err != nil {
		return &os.PathError{Op: "lstat", Path: d.upper + p, Err: err}
	}
	wh, err := d.isWhiteout(fd, name, &st, xwh)
	if err != nil {
		return err
	}
	kind := Added
	if wh {
		kind = Deleted
	}
	d.add(p, kind)
	return nil
}
