package session

import (
	"archive/tar"
	"bufio"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"github.com/incarnate-dev/incarnate/internal/fsutil"
	"github.com/incarnate-dev/incarnate/internal/progress"
	"github.com/incarnate-dev/incarnate/internal/termtext"
	"github.com/incarnate-dev/incarnate/layers"
)

// Export writes session name's changes to w as a layer tarball in the OCI
// changeset format, which docker, podman and containers/storage apply to
// a copy of the base. It returns how many changes it wrote. The session
// may be in use: reading is safe, but what runs inside may change files
// meanwhile, and a file that shrinks under the export fails it.
func (s *Store) Export(name string, w io.Writer) (int, error) {
	m, lowers, err := s.overlayOf(name)
	if err != nil {
		return 0, err
	}
	upper, f := s.upperDir(name), s.formatOf(m)
	changes, err := diffUpper(upper, lowers, f, mountPoints(m))
	if err != nil {
		return 0, err
	}
	return len(changes), exportTar(w, upper, changes, f)
}

// ExportFile writes the tarball to file atomically: into a temp file
// beside it, renamed over it only when complete, so a failed or killed
// export never leaves half a tarball under file's name.
func (s *Store) ExportFile(name, file string) (int, error) {
	n := 0
	err := writeAtomic(file, func(w io.Writer) error {
		var err error
		n, err = s.Export(name, w)
		return err
	})
	return n, err
}

// ExportTar writes changes, as DiffUpper found them in upper, to w:
// added and modified paths with their content, mode, owner, mtime (to
// the second) and xattrs, but no overlay.* ones; a deletion as an empty
// "dir/.wh.name"; a replaced directory as itself followed at once by its
// "dir/.wh..wh..opq", then what it now holds. Names are relative
// ("etc/passwd"), owners numeric.
func ExportTar(w io.Writer, upper string, changes []Change) error {
	return exportTar(w, upper, changes, format{})
}

func exportTar(w io.Writer, upper string, changes []Change, f format) error {
	return writeChanges(&exporter{tw: tar.NewWriter(w), upper: upper, format: f}, changes)
}

// writeChanges writes changes through x, whose writer, upper dir and
// format are set.
func writeChanges(x *exporter, changes []Change) error {
	ufd, err := unix.Open(x.upper, unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return &os.PathError{Op: "open", Path: x.upper, Err: err}
	}
	defer unix.Close(ufd)
	x.upperFd, x.links = ufd, map[[2]uint64]string{}
	for _, c := range changes {
		if err := x.change(c); err != nil {
			return err
		}
	}
	return x.tw.Close()
}

type exporter struct {
	tw      *tar.Writer
	upper   string
	upperFd int                  // O_PATH, everything is opened beneath it
	links   map[[2]uint64]string // dev, inode -> first name, for hard links
	holes   int64                // of the files written so far (see sparseLimit)
	format                       // how upper was written
	// exact keeps modification times to the nanosecond (PAX records), as
	// a pushed layer must to come back as it was; a session's export is
	// to the second, as docker's layers are.
	exact bool
}

// header starts the header of name with the mtime of st, as exact as
// the export keeps it.
func (x *exporter) newHeader(name string, st *unix.Stat_t) *tar.Header {
	if !x.exact {
		return &tar.Header{Name: name, ModTime: time.Unix(st.Mtim.Sec, 0)}
	}
	return &tar.Header{Name: name, ModTime: time.Unix(st.Mtim.Sec, st.Mtim.Nsec), Format: tar.FormatPAX}
}

func (x *exporter) change(c Change) error {
	e, err := x.open(c.Path)
	if err != nil {
		return err
	}
	defer e.close()
	name := strings.TrimPrefix(c.Path, "/")
	switch c.Kind {
	case Deleted:
		dir, base := path.Split(name)
		return x.marker(dir+layers.WhiteoutPrefix+base, &e.st)
	case Replaced:
		if err := e.refuseRedirect(); err != nil {
			return err
		}
		if err := x.entry(name, e); err != nil {
			return err
		}
		return x.marker(name+"/"+layers.OpaqueWhiteout, &e.st)
	}
	return x.entry(name, e)
}

// A session that runs meanwhile can swap a directory for a symlink to
// /etc between two steps of the export. So every entry is opened once,
// beneath the upper dir with no symlink followed on the way (openat2
// RESOLVE_BENEATH|RESOLVE_NO_SYMLINKS; the entry itself may be one, which
// is then what is read), and everything about it is read through that
// fd: what it was when opened, never what a path names later.
type entry struct {
	fd   int // O_PATH
	st   unix.Stat_t
	data *os.File // reopened for reading: regular files and directories
}

func (x *exporter) open(p string) (*entry, error) {
	rel := strings.TrimPrefix(p, "/")
	if rel == "" {
		rel = "."
	}
	fd, err := openBeneath(x.upperFd, rel)
	if err != nil {
		return nil, &os.PathError{Op: "open", Path: fsutil.ShortJoin(x.upper, rel), Err: err}
	}
	e := &entry{fd: fd}
	if err := unix.Fstat(fd, &e.st); err != nil {
		unix.Close(fd)
		return nil, &os.PathError{Op: "fstat", Path: x.upper + p, Err: err}
	}
	if t := e.st.Mode & unix.S_IFMT; t == unix.S_IFREG || t == unix.S_IFDIR {
		// Through the fd's own link in /proc: the same inode, whatever
		// the path names by now.
		if e.data, err = os.Open("/proc/self/fd/" + strconv.Itoa(fd)); err != nil {
			unix.Close(fd)
			return nil, &os.PathError{Op: "open", Path: x.upper + p, Err: err}
		}
	}
	return e, nil
}

// openBeneath opens rel beneath directory dirfd with no symlink followed
// (O_PATH, the last component itself not followed either), a part
// shorter than PATH_MAX at a time: a session's tree may be deeper.
func openBeneath(dirfd int, rel string) (int, error) {
	how := &unix.OpenHow{
		Flags:   unix.O_PATH | unix.O_NOFOLLOW | unix.O_CLOEXEC,
		Resolve: unix.RESOLVE_BENEATH | unix.RESOLVE_NO_SYMLINKS | unix.RESOLVE_NO_MAGICLINKS,
	}
	at := dirfd
	for len(rel) >= unix.PathMax {
		cut := strings.LastIndexByte(rel[:unix.PathMax-1], '/')
		if cut <= 0 {
			return -1, unix.ENAMETOOLONG
		}
		fd, err := unix.Openat2(at, rel[:cut], how)
		if at != dirfd {
			unix.Close(at)
		}
		if err != nil {
			return -1, err
		}
		at, rel = fd, rel[cut+1:]
	}
	fd, err := unix.Openat2(at, rel, how)
	if at != dirfd {
		unix.Close(at)
	}
	return fd, err
}

func (e *entry) close() {
	if e.data != nil {
		e.data.Close()
	}
	unix.Close(e.fd)
}

// marker writes an empty whiteout file dated like what it stands for.
func (x *exporter) marker(name string, st *unix.Stat_t) error {
	hdr := x.newHeader(name, st)
	hdr.Typeflag = tar.TypeReg
	return x.tw.WriteHeader(hdr)
}

// refuseRedirect: a directory renamed by overlayfs (redirect_dir, which
// incarnate never enables) keeps its unchanged content in the lower
// layers under its old name, which a tarball cannot say.
func (e *entry) refuseRedirect() error {
	if e.data == nil {
		return nil
	}
	for _, p := range []string{trustedPrefix, userPrefix} {
		if _, err := fsutil.GetXattrFd(e.data, p+"redirect", nil); err == nil {
			return fmt.Errorf("export %q: the directory was renamed by overlayfs (redirect_dir); a tarball cannot express that", e.data.Name())
		}
	}
	return nil
}

// entry writes one added or modified path; name is "" for the root.
func (x *exporter) entry(name string, e *entry) error {
	if name == "" {
		name = "."
	}
	hdr, err := x.header(name, e)
	if hdr == nil || err != nil {
		return err
	}
	if err := x.tw.WriteHeader(hdr); err != nil {
		return err
	}
	if hdr.Typeflag != tar.TypeReg || hdr.Size == 0 {
		return nil
	}
	return copyContent(x.tw, e.data, hdr.Size)
}

// sparseLimit is how much of an export's files may be holes, which a
// tarball holds as zeros, before export refuses them. It is one budget
// for the whole export: a file's limit alone lets 10,000 files with
// 60 MiB of holes each through, 600 GiB of zeros.
const sparseLimit = 64 << 20

// takeHoles counts the holes of file name (st) against the export's
// budget, and refuses the file that passes it.
func (x *exporter) takeHoles(name string, st *unix.Stat_t) error {
	holes := max(st.Size-st.Blocks*512, 0)
	if holes == 0 {
		return nil
	}
	x.holes += holes
	if x.holes <= sparseLimit {
		return nil
	}
	// archive/tar writes no sparse entries: a tarball would hold every
	// zero of an 8 TiB file that takes no disk at all.
	return fmt.Errorf("%s is %s, but only %s of it is on disk (a sparse file); with it, the tarball would hold %s of zeros for the holes of the session's files, more than the %s an export allows. Remove or shrink sparse files in the session first",
		termtext.Visible("/"+name), progress.HumanSize(st.Size), progress.HumanSize(st.Blocks*512),
		progress.HumanSize(x.holes), progress.HumanSize(sparseLimit))
}

// header describes a path; nil for a socket, which a tarball cannot hold
// (and which means nothing once its owner is gone).
func (x *exporter) header(name string, e *entry) (*tar.Header, error) {
	st := &e.st
	hdr := x.newHeader(name, st)
	hdr.Mode, hdr.Uid, hdr.Gid = int64(st.Mode&0o7777), int(x.owner(st.Uid)), int(x.owner(st.Gid))
	switch st.Mode & unix.S_IFMT {
	case unix.S_IFDIR:
		hdr.Typeflag, hdr.Name = tar.TypeDir, name+"/"
	case unix.S_IFREG:
		hdr.Typeflag, hdr.Size = tar.TypeReg, st.Size
		x.hardLink(hdr, st)
		if hdr.Typeflag == tar.TypeReg {
			if err := x.takeHoles(name, st); err != nil {
				return nil, err
			}
		}
	case unix.S_IFLNK:
		buf := make([]byte, unix.PathMax)
		n, err := unix.Readlinkat(e.fd, "", buf)
		if err != nil {
			return nil, &os.PathError{Op: "readlink", Path: name, Err: err}
		}
		target := string(buf[:n])
		hdr.Typeflag, hdr.Linkname = tar.TypeSymlink, target
	case unix.S_IFCHR:
		hdr.Typeflag, hdr.Devmajor, hdr.Devminor = tar.TypeChar, int64(unix.Major(st.Rdev)), int64(unix.Minor(st.Rdev))
	case unix.S_IFBLK:
		hdr.Typeflag, hdr.Devmajor, hdr.Devminor = tar.TypeBlock, int64(unix.Major(st.Rdev)), int64(unix.Minor(st.Rdev))
	case unix.S_IFIFO:
		hdr.Typeflag = tar.TypeFifo
	default:
		return nil, nil
	}
	xattrs, err := exportXattrs(e.data)
	if len(xattrs) > 0 {
		hdr.PAXRecords = xattrs
	}
	return hdr, err
}

// hardLink turns hdr into a link to the first name of the same file
// already written.
func (x *exporter) hardLink(hdr *tar.Header, st *unix.Stat_t) {
	if st.Nlink < 2 {
		return
	}
	key := [2]uint64{st.Dev, st.Ino}
	if first, ok := x.links[key]; ok {
		hdr.Typeflag, hdr.Linkname, hdr.Size = tar.TypeLink, first, 0
		return
	}
	x.links[key] = hdr.Name
}

// exportXattrs are f's extended attributes as PAX records, without the
// overlay's own: they describe this upper dir's relation to its lowers
// and would mislead whatever applies the tarball. Only regular files and
// directories have them read (f is nil for the rest).
func exportXattrs(f *os.File) (map[string]string, error) {
	if f == nil {
		return nil, nil
	}
	names, err := fsutil.ListXattrsFd(f)
	if err != nil || len(names) == 0 {
		return nil, err
	}
	recs := map[string]string{}
	for _, n := range names {
		if strings.HasPrefix(n, trustedPrefix) || strings.HasPrefix(n, userPrefix) {
			continue
		}
		v, err := fsutil.GetXattrFd(f, n, nil)
		if err != nil {
			return nil, err
		}
		recs["SCHILY.xattr."+n] = string(v)
	}
	return recs, nil
}

// copyContent copies exactly size bytes of f: a file that changed size
// since its header was written (a session running meanwhile) is an error,
// not a corrupt tarball.
func copyContent(w io.Writer, f *os.File, size int64) error {
	if _, err := io.CopyN(w, f, size); err != nil {
		if errors.Is(err, io.EOF) {
			return fmt.Errorf("export %q: the file shrank while being read; stop the session and export again", f.Name())
		}
		return err
	}
	return nil
}

// writeAtomic writes file through write, never leaving half a tarball
// under a regular file's name (see writeFile).
func writeAtomic(file string, write func(io.Writer) error) error {
	err := writeFile(file, write)
	if err != nil {
		return fmt.Errorf("export to %s: %w", file, err)
	}
	return nil
}

// writeFile opens file the way any program would, so the kernel's
// protections apply (fs.protected_symlinks refuses a symlink another user
// planted in a sticky directory; incarnate used to resolve it itself and
// go around that). Only a regular file of the caller's own, named
// directly, or none yet, is replaced whole: a temp file beside it, renamed
// over it when complete. Anything else (a fifo, /dev/stdout, what a
// symlink leads to, a file of someone else's) is written into as it is.
func writeFile(file string, write func(io.Writer) error) error {
	f, err := os.OpenFile(file, os.O_WRONLY|unix.O_NOCTTY, 0)
	if errors.Is(err, fs.ErrNotExist) {
		if fi, lerr := os.Lstat(file); lerr == nil && fi.Mode()&os.ModeSymlink != 0 {
			// A symlink to nothing yet: make what it names, as any
			// program would (the kernel's protections apply again).
			if f, err = os.OpenFile(file, os.O_WRONLY|os.O_CREATE|os.O_TRUNC|unix.O_NOCTTY, 0o666); err != nil {
				return err
			}
			return writeAndClose(f, write, true)
		}
		return replaceWhole(file, write)
	}
	if err != nil {
		if errors.Is(err, unix.EISDIR) {
			return errors.New("is a directory")
		}
		return err
	}
	fi, err := f.Stat()
	if err != nil {
		f.Close()
		return err
	}
	if fi.Mode().IsRegular() && ownFile(fi) && sameAsNamed(file, fi) {
		f.Close()
		return replaceWhole(file, write)
	}
	if fi.Mode().IsRegular() {
		if err := f.Truncate(0); err != nil {
			f.Close()
			return err
		}
	}
	return writeAndClose(f, write, fi.Mode().IsRegular())
}

// ownFile reports whether the caller owns the file fi describes.
func ownFile(fi fs.FileInfo) bool {
	st, ok := fi.Sys().(*syscall.Stat_t)
	return ok && int(st.Uid) == os.Geteuid()
}

// sameAsNamed reports whether file names fi itself, not through a symlink.
func sameAsNamed(file string, fi fs.FileInfo) bool {
	lfi, err := os.Lstat(file)
	return err == nil && os.SameFile(lfi, fi)
}

// replaceWhole writes file as a temp file beside it, renamed over it when
// complete: a failed or killed export leaves nothing half-written.
func replaceWhole(file string, write func(io.Writer) error) error {
	// The temp file is made with 0666, so the umask applies as for any
	// file the user makes.
	dir := filepath.Dir(file)
	f, err := createBeside(dir, filepath.Base(file))
	if err != nil {
		var pe *fs.PathError
		if errors.As(err, &pe) {
			err = fmt.Errorf("cannot create a file in %s: %w", dir, pe.Err)
		}
		return err
	}
	err = writeAndClose(f, write, true)
	if err == nil {
		err = os.Rename(f.Name(), file)
	}
	if err != nil {
		os.Remove(f.Name())
		return err
	}
	return fsutil.SyncDir(dir)
}

// writeAndClose writes through a buffer into f, then syncs (when sync)
// and closes it.
func writeAndClose(f *os.File, write func(io.Writer) error, sync bool) error {
	bw := bufio.NewWriterSize(f, 1<<20)
	err := write(bw)
	if err == nil {
		err = bw.Flush()
	}
	if err == nil && sync {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	return err
}

func createBeside(dir, base string) (*os.File, error) {
	for i := 0; ; i++ {
		tmp := filepath.Join(dir, fmt.Sprintf(".%s.%d-%d.tmp", base, os.Getpid(), i))
		f, err := os.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_EXCL|unix.O_CLOEXEC, 0o666)
		if !errors.Is(err, fs.ErrExist) || i >= 100 {
			return f, err
		}
	}
}
