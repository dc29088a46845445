package layers

import (
	"archive/tar"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"

	"github.com/incarnate-dev/incarnate/internal/faults"
	"github.com/incarnate-dev/incarnate/internal/fsutil"
	"github.com/incarnate-dev/incarnate/internal/progress"
	"github.com/incarnate-dev/incarnate/sandbox"
)

// ImportOptions shape what an import tells the user.
type ImportOptions struct {
	// Progress, when set, gets a line redrawn in place with \r: bytes
	// read of the source, of its total. Set it only for a terminal.
	Progress io.Writer
	// Warn gets notes for the user, each said once: what of the source
	// could not be kept.
	Warn func(msg string)
}

// sourceKind is what an import source turned out to be.
type sourceKind int

const (
	kindDir          sourceKind = iota // a root file system in a directory
	kindLayout                         // an OCI image layout directory (skopeo copy ... oci:DIR)
	kindRootfs                         // a rootfs tarball (docker export, mmdebstrap, a minirootfs)
	kindImageArchive                   // docker save, or an OCI layout in a tar
)

// Import makes base name from src: a directory (copied as it is), an OCI
// image layout, a rootfs tarball (plain, gzip, zstd, xz or bzip2, told
// by content and not by name) or an image archive (docker save, OCI
// archive), whose layers become one, whiteouts applied.
//
// The layer is unpacked in tmp/ and renamed into layers/ complete
// (NewLayer); only then is the base's file written (AddBase). A failure
// or a kill leaves debris in tmp/, which the next start cleans, or at
// worst a layer no base names, which the next base command removes.
func (s *Store) Import(name, src string, o ImportOptions) (*Base, error) {
	if err := s.checkNewBase(name); err != nil {
		return nil, err
	}
	abs, err := filepath.Abs(src)
	if err != nil {
		return nil, err
	}
	kind, compression, err := sniff(abs)
	if err != nil {
		return nil, fmt.Errorf("import %q: %w", src, err)
	}
	s.SweepOrphans()
	if os.Geteuid() != 0 && o.Warn != nil { // not root here, not even of a sub-id namespace
		o.Warn("importing as an ordinary user: every file becomes yours, whatever owner the source records")
	}
	id, err := s.NewLayer(func(dst string) error {
		if err := s.unpack(kind, compression, abs, dst, o); err != nil {
			return err
		}
		// A base outlives every session on it: its files must be on
		// disk before the rename publishes it.
		if err := syncFS(dst); err != nil {
			return err
		}
		faults.Point("import-unpacked")
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("import %q: %w", src, err)
	}
	faults.Point("import-layer")
	b, err := s.AddBase(name, []string{id}, abs)
	if err != nil {
		_ = s.dropLayer(id)
		return nil, err
	}
	return b, nil
}

// checkNewBase refuses a name that is invalid or taken, before anything
// is read or written.
func (s *Store) checkNewBase(name string) error {
	if err := ValidateName("base", name); err != nil {
		return err
	}
	if name == HostBase {
		return fmt.Errorf("base %q is %w (this machine's own /): choose another name", name, ErrBuiltin)
	}
	if _, err := os.Stat(s.basePath(name)); err == nil {
		return fmt.Errorf("base %q: %w (see `incarnate base ls`)", name, ErrExist)
	}
	return nil
}

// ownUnmapped gives the caller (root inside) what CopyTree, run in a sub-id
// namespace, copied with the overflow owner: files of host ids the
// namespace does not map, such as a root-owned source directory's. Owners
// it maps are kept. (A file owned by the mapped id 65534 itself cannot be
// told apart, and becomes the caller's too.) The chown clears set-id bits
// and file capabilities, which are put back: a set-uid program of the
// host's root stays a set-uid program of root's inside.
func ownUnmapped(dir string) error {
	ouid, ogid := overflowID("uid"), overflowID("gid")
	fix := func(p string, st *unix.Stat_t) error {
		uid, gid := int(st.Uid), int(st.Gid)
		if uid != ouid && gid != ogid {
			return nil
		}
		if uid == ouid {
			uid = 0
		}
		if gid == ogid {
			gid = 0
		}
		caps := make([]byte, 256)
		n, cerr := unix.Lgetxattr(p, "security.capability", caps)
		if err := os.Lchown(p, uid, gid); err != nil {
			return err
		}
		if st.Mode&unix.S_IFMT == unix.S_IFLNK {
			return nil
		}
		if cerr == nil {
			if err := unix.Lsetxattr(p, "security.capability", caps[:n], 0); err != nil {
				return &os.PathError{Op: "setxattr security.capability", Path: p, Err: err}
			}
		}
		return unix.Chmod(p, st.Mode&0o7777)
	}
	var root unix.Stat_t
	if err := unix.Lstat(dir, &root); err != nil {
		return err
	}
	if err := fix(dir, &root); err != nil {
		return err
	}
	// Through fds: a tree of any depth.
	return fsutil.Walk(dir, func(_ int, _, at string, st *unix.Stat_t) error { return fix(at, st) })
}

// overflowID is the id the kernel shows for unmapped ones (65534 unless
// changed in /proc/sys/kernel).
func overflowID(kind string) int {
	b, err := os.ReadFile("/proc/sys/kernel/overflow" + kind)
	if n, perr := strconv.Atoi(strings.TrimSpace(string(b))); err == nil && perr == nil {
		return n
	}
	return 65534
}

func (s *Store) unpack(kind sourceKind, compression, src, dst string, o ImportOptions) error {
	rootless := sandbox.Rootless()
	xo := extractOptions{privileged: !rootless, subIDs: rootless && os.Geteuid() == 0, warn: o.Warn}
	switch kind {
	case kindDir:
		if err := copyDir(src, dst, o); err != nil || !xo.subIDs {
			return err
		}
		return ownUnmapped(dst)
	case kindLayout:
		return importLayout(src, dst, o, xo)
	case kindRootfs:
		return importRootfs(src, dst, o, xo)
	}
	scratch, err := fsutil.NewWorkspace(filepath.Join(s.Root, "tmp"), "import-")
	if err != nil {
		return err
	}
	defer scratch.Discard()
	return importImageArchive(src, compression, dst, scratch, o, xo)
}

// copyDir copies a directory to import, its progress counted in bytes
// (its size is not known before the walk), once the store's file system
// is known to have room for it.
func copyDir(src, dst string, o ImportOptions) error {
	need, err := diskUsage(src)
	if err != nil {
		return err
	}
	fd, err := unix.Open(filepath.Dir(dst), unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return err
	}
	err = newSpaceGuard(fd).room(need, src)
	unix.Close(fd)
	if err != nil {
		return err
	}
	p := progress.New(o.Progress, "copying "+src, 0)
	defer p.Finish()
	return fsutil.CopyForeignTree(src, dst, p.Add)
}

func importRootfs(src, dst string, o ImportOptions, xo extractOptions) error {
	f, err := openCounted(o, "reading "+filepath.Base(src), src)
	if err != nil {
		return err
	}
	defer f.Close()
	defer f.p.Finish()
	r, _, err := decompress(f)
	if err != nil {
		return err
	}
	defer r.Close()
	return extractTar(r, dst, xo)
}

// sniff tells what src is, and for a file, its compression.
func sniff(src string) (sourceKind, string, error) {
	fi, err := os.Stat(src)
	if err != nil {
		return 0, "", err
	}
	if fi.IsDir() {
		if _, err := os.Stat(filepath.Join(src, "oci-layout")); err == nil {
			return kindLayout, "", nil
		}
		return kindDir, "", nil
	}
	f, err := os.Open(src)
	if err != nil {
		return 0, "", err
	}
	defer f.Close()
	r, compression, err := decompress(f)
	if err != nil {
		return 0, "", fmt.Errorf("%w: %s data that does not decompress: %v", ErrUnknownSource, compression, err)
	}
	defer r.Close()
	kind, err := tarKind(r)
	if err != nil {
		what := "a file"
		if compression != "" {
			what = compression + " data"
		}
		return 0, "", fmt.Errorf("%w: %s, but not a tar archive (%v)", ErrUnknownSource, what, err)
	}
	return kind, compression, nil
}

// tarKind tells a rootfs tarball from an image archive by the first
// entries, up to the first file: an image archive starts with blobs/,
// oci-layout, or a layer or config named by its digest (docker save,
// skopeo, crane); a root file system does not. Only those first headers
// are read, however large the source.
func tarKind(r io.Reader) (sourceKind, error) {
	tr := tar.NewReader(r)
	for i := 0; i < 64; i++ {
		hdr, err := tr.Next()
		if err == io.EOF && i > 0 {
			break
		}
		if err != nil {
			return 0, err
		}
		if imageArchiveEntry(hdr.Name) {
			return kindImageArchive, nil
		}
		if hdr.Typeflag == tar.TypeReg {
			break
		}
	}
	return kindRootfs, nil
}

// imageArchiveEntry reports whether name belongs to an image archive's
// own structure rather than to a root file system.
func imageArchiveEntry(name string) bool {
	rel, err := entryPath(name)
	if err != nil {
		return false
	}
	top, _, _ := strings.Cut(rel, "/")
	switch top {
	case "oci-layout", "index.json", "manifest.json", "repositories", "blobs":
		return true
	}
	top = strings.TrimPrefix(top, "sha256:")
	for _, ext := range []string{".json", ".tar", ".tar.gz"} {
		top = strings.TrimSuffix(top, ext)
	}
	return len(top) == 64 && strings.Trim(top, "0123456789abcdef") == ""
}

func syncFS(dir string) error {
	fd, err := unix.Open(dir, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return &os.PathError{Op: "open", Path: dir, Err: err}
	}
	defer unix.Close(fd)
	if err := unix.Syncfs(fd); err != nil {
		return &os.PathError{Op: "syncfs", Path: dir, Err: err}
	}
	return nil
}
