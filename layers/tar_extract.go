package layers

import (
	"archive/tar"
	"errors"
	"fmt"
	"io"
	"os"
	"sort"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"

	"github.com/incarnate-dev/incarnate/internal/fsutil"
)

// extractOptions say what an unpack may do besides making files.
type extractOptions struct {
	// privileged: the caller is root, so owners, device nodes and every
	// xattr namespace are kept. Otherwise files become the caller's,
	// device nodes are skipped and only user.* xattrs are set.
	privileged bool
	// subIDs: the caller is root of a user namespace that maps its sub-id
	// ranges (sandbox.ReexecWithSubIDs), so owners are kept where mapped.
	subIDs bool
	// warn tells the user something once; nil says nothing.
	warn func(msg string)
	// danglingLinks skips, with a warning, a hard link whose target never
	// came: in a flattened image, the target may be a name an upper
	// layer deleted. In a rootfs tarball it is a broken archive.
	danglingLinks bool
	// whiteouts, when set, is the xattr prefix of overlay's markers
	// ("trusted.overlay."): the stream is one image layer, whose OCI
	// whiteouts become overlay's (a pull keeps layers apart).
	whiteouts string
}

// extractor unpacks a tar stream below one directory. Every file is made
// with an *at syscall relative to a directory opened with openat2
// RESOLVE_BENEATH|RESOLVE_NO_SYMLINKS from the destination (tar_paths.go),
// never by joining strings and letting the kernel follow what an earlier
// entry left, so no entry, however crafted, reaches outside.
type extractor struct {
	root int
	extractOptions
	// dirs get their owner, mode and times last, deepest first: entries
	// made inside change a directory's mtime, and a read-only mode would
	// stop the entries after it.
	dirs     map[string]*tar.Header
	dirOrder []string
	// links are hard links whose target came later in the stream (a
	// flattened image lists upper layers first).
	links    []*tar.Header
	cacheDir string
	cacheFd  int
	skipped  map[string][]string // what was left out, for one warning each
	buf      []byte
	space    *spaceGuard
}

var errEmptyArchive = errors.New("the archive is empty")

// extractTar unpacks r into dst, which it creates.
func extractTar(r io.Reader, dst string, o extractOptions) error {
	x, err := newExtractor(dst, o)
	if err != nil {
		return err
	}
	defer x.close()
	tr := tar.NewReader(r)
	n := 0
	for ; ; n++ {
		hdr, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			return fmt.Errorf("read archive: %w", err)
		}
		if err := x.entry(hdr, tr); err != nil {
			return err
		}
	}
	if n == 0 {
		return errEmptyArchive
	}
	return x.finish()
}

// newExtractor creates dst and opens it for unpacking.
func newExtractor(dst string, o extractOptions) (*extractor, error) {
	if err := os.Mkdir(dst, 0o755); err != nil {
		return nil, err
	}
	root, err := unix.Open(dst, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, &os.PathError{Op: "open", Path: dst, Err: err}
	}
	return &extractor{root: root, extractOptions: o, dirs: map[string]*tar.Header{}, cacheFd: -1,
		skipped: map[string][]string{}, buf: make([]byte, 256<<10), space: newSpaceGuard(root)}, nil
}

func (x *extractor) close() {
	x.dropCache()
	unix.Close(x.root)
}

func (x *extractor) entry(hdr *tar.Header, r io.Reader) error {
	rel, err := entryPath(hdr.Name)
	if err != nil {
		return err
	}
	if rel == "" {
		if hdr.Typeflag != tar.TypeDir {
			return fmt.Errorf("archive entry %q: the root must be a directory", hdr.Name)
		}
		x.noteDir(rel, hdr)
		return nil
	}
	dir, base := splitPath(rel)
	if x.whiteouts != "" && strings.Contains("/"+dir+"/", "/"+WhiteoutPrefix) {
		x.skip("entries inside a whiteout", rel) // a hostile layer's: a whiteout holds nothing
		return nil
	}
	pfd, err := x.parent(dir)
	if err != nil {
		return resolveErr(hdr.Name, dir, err)
	}
	if x.whiteouts != "" && strings.HasPrefix(base, WhiteoutPrefix) {
		name := strings.TrimPrefix(base, WhiteoutPrefix)
		if err := x.whiteout(pfd, strings.TrimSuffix(rel, base)+name, name); err != nil {
			return fmt.Errorf("archive entry %q: %w", hdr.Name, err)
		}
		return nil
	}
	switch hdr.Typeflag {
	case tar.TypeDir:
		err = x.mkdir(pfd, rel, base, hdr)
	case tar.TypeReg, 0:
		err = x.file(pfd, rel, base, hdr, r)
	case tar.TypeSymlink:
		err = x.special(pfd, rel, base, hdr, func() error { return unix.Symlinkat(hdr.Linkname, pfd, base) })
	case tar.TypeLink:
		return x.link(pfd, rel, base, hdr, true)
	case tar.TypeFifo:
		err = x.special(pfd, rel, base, hdr, func() error { return unix.Mkfifoat(pfd, base, 0o600) })
	case tar.TypeChar, tar.TypeBlock:
		err = x.device(pfd, rel, base, hdr)
	default:
		x.skip(fmt.Sprintf("entries of tar type %q", hdr.Typeflag), rel)
	}
	if err != nil {
		return fmt.Errorf("archive entry %q: %w", hdr.Name, err)
	}
	return nil
}

// OCI whiteout names (image-spec, layer.md): ".wh.NAME" deletes NAME of
// the layers below, ".wh..wh..opq" hides all they hold in its directory.
// A pull reads them here; session export and base push write them.
const (
	WhiteoutPrefix = ".wh."
	OpaqueWhiteout = ".wh..wh..opq"
)

// whiteout turns the OCI whiteout of name in directory pfd (rel is its
// path) into overlay's: an opaque directory, or a 0/0 character
// device, which root of a user namespace may make too. Where even that
// is refused (an ordinary user outside one) it is overlay's xattr form:
// an empty file marked whiteout, in a directory marked as holding such
// files (overlay.opaque "x", Linux 6.7 on).
func (x *extractor) whiteout(pfd int, rel, name string) error {
	dir := "/proc/self/fd/" + strconv.Itoa(pfd)
	if name == OpaqueWhiteout[len(WhiteoutPrefix):] {
		return unix.Setxattr(dir, x.whiteouts+"opaque", []byte("y"), 0)
	}
	if name == "" || name == "." || name == ".." {
		x.skip("whiteouts with no name", rel)
		return nil
	}
	mk := func() error { return unix.Mknodat(pfd, name, unix.S_IFCHR, 0) }
	err := x.create(pfd, rel, name, false, mk)
	if !errors.Is(err, unix.EPERM) {
		return err
	}
	err = x.create(pfd, rel, name, false, func() error {
		fd, err := unix.Openat(pfd, name, unix.O_WRONLY|unix.O_CREAT|unix.O_EXCL|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0o600)
		if err == nil {
			err = unix.Fsetxattr(fd, x.whiteouts+"whiteout", []byte("y"), 0)
			unix.Close(fd)
		}
		return err
	})
	if err != nil {
		return err
	}
	if v, _ := fsutil.GetXattr(dir, x.whiteouts+"opaque", nil); string(v) != "y" {
		return unix.Setxattr(dir, x.whiteouts+"opaque", []byte("x"), 0)
	}
	return nil
}

// parent opens the directory dir, creating it if the archive did not
// list it. The last one is kept open: entries come a directory at a time.
func (x *extractor) parent(dir string) (int, error) {
	if x.cacheFd >= 0 && x.cacheDir == dir {
		return x.cacheFd, nil
	}
	fd, err := mkdirBeneath(x.root, dir)
	if err != nil {
		return -1, err
	}
	x.dropCache()
	x.cacheDir, x.cacheFd = dir, fd
	return fd, nil
}

func (x *extractor) dropCache() {
	if x.cacheFd >= 0 {
		unix.Close(x.cacheFd)
	}
	x.cacheFd = -1
}

// create runs mk to make base in the directory pfd. If an earlier entry
// left something of that name, the later entry wins, as with tar: it is
// unlinked first (never followed), except that a directory met again as
// a directory is kept.
func (x *extractor) create(pfd int, rel, base string, isDir bool, mk func() error) error {
	err := mk()
	if err != unix.EEXIST {
		return err
	}
	var st unix.Stat_t
	if err := unix.Fstatat(pfd, base, &st, unix.AT_SYMLINK_NOFOLLOW); err != nil {
		return err
	}
	wasDir := st.Mode&unix.S_IFMT == unix.S_IFDIR
	if isDir && wasDir {
		return nil
	}
	flags := 0
	if wasDir {
		flags = unix.AT_REMOVEDIR
		delete(x.dirs, rel)
	}
	// The cached directory is pfd itself, never the entry removed here.
	if err := unix.Unlinkat(pfd, base, flags); err != nil {
		return fmt.Errorf("replace %q: %w", rel, err)
	}
	return mk()
}

func (x *extractor) mkdir(pfd int, rel, base string, hdr *tar.Header) error {
	// 0700 until finish sets the real mode, so that a read-only
	// directory can still be filled by an ordinary user.
	if err := x.create(pfd, rel, base, true, func() error { return unix.Mkdirat(pfd, base, 0o700) }); err != nil {
		return err
	}
	x.noteDir(rel, hdr)
	return nil
}

func (x *extractor) noteDir(rel string, hdr *tar.Header) {
	if _, seen := x.dirs[rel]; !seen {
		x.dirOrder = append(x.dirOrder, rel)
	}
	x.dirs[rel] = hdr
}

func (x *extractor) file(pfd int, rel, base string, hdr *tar.Header, r io.Reader) error {
	if err := x.space.room(hdr.Size, hdr.Name); err != nil {
		return err
	}
	fd := -1
	err := x.create(pfd, rel, base, false, func() (err error) {
		fd, err = unix.Openat(pfd, base, unix.O_WRONLY|unix.O_CREAT|unix.O_EXCL|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0o600)
		return err
	})
	if err != nil {
		return err
	}
	f := os.NewFile(uintptr(fd), rel)
	err = fsutil.WriteSparse(f, r, x.buf)
	if err == nil {
		err = x.setMeta(fd, hdr)
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return err
	}
	return setTimes(pfd, base, hdr)
}

// special makes a symlink or a fifo with mk, then its owner, mode and
// times, none of which follows a symlink.
func (x *extractor) special(pfd int, rel, base string, hdr *tar.Header, mk func() error) error {
	if err := x.create(pfd, rel, base, false, mk); err != nil {
		return err
	}
	if err := x.chown(rel, hdr, func() error {
		return unix.Fchownat(pfd, base, hdr.Uid, hdr.Gid, unix.AT_SYMLINK_NOFOLLOW)
	}); err != nil {
		return fmt.Errorf("chown %q: %w", rel, err)
	}
	if hdr.Typeflag != tar.TypeSymlink {
		// Just made by us in a directory only we write, so not a symlink.
		if err := unix.Fchmodat(pfd, base, uint32(hdr.Mode&0o7777), 0); err != nil {
			return fmt.Errorf("chmod %q: %w", rel, err)
		}
	}
	return setTimes(pfd, base, hdr)
}

func (x *extractor) device(pfd int, rel, base string, hdr *tar.Header) error {
	if !x.privileged {
		x.skip("device nodes, which only root can make", rel)
		return nil
	}
	kind := uint32(unix.S_IFCHR)
	if hdr.Typeflag == tar.TypeBlock {
		kind = unix.S_IFBLK
	}
	dev := int(unix.Mkdev(uint32(hdr.Devmajor), uint32(hdr.Devminor)))
	err := x.special(pfd, rel, base, hdr, func() error { return unix.Mknodat(pfd, base, kind|0o600, dev) })
	if err == unix.EPERM {
		// Root inside a user namespace (a container) cannot either.
		x.skip("device nodes, which only root can make", rel)
		return nil
	}
	return err
}

// link makes a hard link to an entry already unpacked. The target is
// resolved like any entry, below the destination and through no
// symlink, so it cannot name a file outside. A target that comes later
// in the stream is tried again at the end.
func (x *extractor) link(pfd int, rel, base string, hdr *tar.Header, mayDefer bool) error {
	target, err := entryPath(hdr.Linkname)
	if err != nil {
		return unsafeEntry(hdr.Name, fmt.Sprintf("its hard link target %q has a \"..\" component", hdr.Linkname))
	}
	if target == rel {
		return nil
	}
	if target == "" {
		return fmt.Errorf("archive entry %q: a hard link to the root", hdr.Name)
	}
	tdir, tbase := splitPath(target)
	tfd, err := openBeneath(x.root, tdir, unix.O_PATH|unix.O_DIRECTORY)
	if err == nil {
		err = x.create(pfd, rel, base, false, func() error { return unix.Linkat(tfd, tbase, pfd, base, 0) })
		unix.Close(tfd)
	}
	switch {
	case err == nil:
		return nil
	case err == unix.ENOENT && mayDefer:
		x.links = append(x.links, hdr)
		return nil
	case err == unix.ELOOP || err == unix.EXDEV:
		return unsafeEntry(hdr.Name, fmt.Sprintf("its hard link target %q goes through a symlink or outside", hdr.Linkname))
	}
	return fmt.Errorf("archive entry %q: hard link to %q: %w", hdr.Name, hdr.Linkname, err)
}

// setMeta gives an open file or directory its owner, mode and xattrs.
// The owner goes first: chown clears the setuid and setgid bits.
func (x *extractor) setMeta(fd int, hdr *tar.Header) error {
	if err := x.chown(hdr.Name, hdr, func() error { return unix.Fchown(fd, hdr.Uid, hdr.Gid) }); err != nil {
		return fmt.Errorf("chown: %w", err)
	}
	if err := unix.Fchmod(fd, uint32(hdr.Mode&0o7777)); err != nil {
		return fmt.Errorf("chmod: %w", err)
	}
	for key, value := range hdr.PAXRecords {
		name, ok := strings.CutPrefix(key, "SCHILY.xattr.")
		if !ok || !x.xattrAllowed(name) {
			continue
		}
		if err := unix.Fsetxattr(fd, name, []byte(value), 0); err != nil {
			x.skip("extended attributes the file system refused", fmt.Sprintf("%s on %s (%v)", name, hdr.Name, err))
		}
	}
	return nil
}

// xattrAllowed filters the xattrs an archive may set. overlayfs reads
// trusted.overlay.* (and user.overlay.* in a user namespace) on lower
// dirs as its own whiteout, opaque and redirect markers, so an archive
// never gets to set those. An ordinary user can only set user.*.
func (x *extractor) xattrAllowed(name string) bool {
	if fsutil.IsOverlayXattr(name) {
		return false
	}
	return x.privileged || strings.HasPrefix(name, "user.")
}

func setTimes(pfd int, base string, hdr *tar.Header) error {
	atime := hdr.AccessTime
	if atime.IsZero() {
		atime = hdr.ModTime
	}
	ts := []unix.Timespec{
		{Sec: atime.Unix(), Nsec: int64(atime.Nanosecond())},
		{Sec: hdr.ModTime.Unix(), Nsec: int64(hdr.ModTime.Nanosecond())},
	}
	if err := unix.UtimesNanoAt(pfd, base, ts, unix.AT_SYMLINK_NOFOLLOW); err != nil {
		return fmt.Errorf("set times of %q: %w", base, err)
	}
	return nil
}

// chown gives an entry its recorded owner with do, where the caller can:
// as root, or for the ids a sub-id namespace maps (the others stay the
// caller's, said once).
func (x *extractor) chown(rel string, hdr *tar.Header, do func() error) error {
	if !x.privileged && !x.subIDs {
		return nil
	}
	err := do()
	if errors.Is(err, unix.EINVAL) && x.subIDs {
		x.skip("owners outside your sub-id ranges (left as yours)", rel)
		return nil
	}
	return err
}

func (x *extractor) skip(what, rel string) {
	x.skipped[what] = append(x.skipped[what], rel)
}

// finish makes the deferred hard links, then gives the directories
// their metadata, deepest first, and says once what was left out.
func (x *extractor) finish() error {
	for _, hdr := range x.links {
		rel, _ := entryPath(hdr.Name)
		dir, base := splitPath(rel)
		pfd, err := x.parent(dir)
		if err != nil {
			return resolveErr(hdr.Name, dir, err)
		}
		err = x.link(pfd, rel, base, hdr, false)
		if errors.Is(err, unix.ENOENT) && x.danglingLinks {
			x.skip("hard links to names an upper layer deleted", rel)
			continue
		}
		if err != nil {
			return err
		}
	}
	x.dropCache()
	sort.SliceStable(x.dirOrder, func(i, j int) bool {
		return strings.Count(x.dirOrder[i], "/") > strings.Count(x.dirOrder[j], "/")
	})
	for _, rel := range x.dirOrder {
		if hdr := x.dirs[rel]; hdr != nil {
			if err := x.finishDir(rel, hdr); err != nil {
				return fmt.Errorf("archive entry %q: %w", hdr.Name, err)
			}
		}
	}
	x.report()
	return nil
}

func (x *extractor) finishDir(rel string, hdr *tar.Header) error {
	fd, err := openBeneath(x.root, rel, unix.O_RDONLY|unix.O_DIRECTORY)
	if err != nil {
		return resolveErr(hdr.Name, rel, err)
	}
	defer unix.Close(fd)
	if err := x.setMeta(fd, hdr); err != nil {
		return err
	}
	return setTimes(fd, ".", hdr)
}

func (x *extractor) report() {
	if x.warn == nil {
		return
	}
	kinds := make([]string, 0, len(x.skipped))
	for k := range x.skipped {
		kinds = append(kinds, k)
	}
	sort.Strings(kinds)
	for _, k := range kinds {
		names := x.skipped[k]
		more := ""
		if len(names) > 3 {
			names, more = names[:3], fmt.Sprintf(", and %d more", len(x.skipped[k])-3)
		}
		x.warn(fmt.Sprintf("skipped %s: %s%s", k, strings.Join(names, ", "), more))
	}
}
