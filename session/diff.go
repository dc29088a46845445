package session

import (
	"encoding/json"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"unicode/utf8"

	"golang.org/x/sys/unix"

	"github.com/incarnate-dev/incarnate/layers"
	"github.com/incarnate-dev/incarnate/sandbox"
)

// What a session changed is read from its upper dir the way overlayfs
// reads it (Documentation/filesystems/overlayfs.rst):
//
//   - a whiteout, a character device 0/0, hides the path below it;
//   - a directory whose overlay.opaque xattr is "y" hides everything the
//     lower layers hold under it ("x" only says the directory holds xattr
//     whiteouts: zero-size files with overlay.whiteout, which kernels ≥ 6.7
//     honour in lower layers);
//   - overlay.redirect marks a directory renamed from elsewhere
//     (redirect_dir, which incarnate never turns on): it merges with a
//     lower directory of another name, which a list of paths cannot say,
//     so it is reported as replaced.
//
// The xattrs are trusted.overlay.* in a session made as root and
// user.overlay.* in one made by an ordinary user (mounted with userxattr);
// lower layers are read with the same prefix, as the kernel does.
//
// Added or modified: a path in the upper dir is modified when the lower
// layers, merged, hold it, and added when they do not. A directory that
// the lower layers hold is in the upper dir because something inside it
// changed (copy-up copies every parent): it is reported as modified only
// when its own mode, owner or group differ. Its mtime is not compared: it
// moves whenever an entry is created or removed inside, which the diff
// reports already, so comparing it would flag nearly every parent.
// Xattr-only changes of such a directory are not seen either.

// Kind is what happened to a path.
type Kind string

const (
	Added    Kind = "added"
	Modified Kind = "modified"
	Deleted  Kind = "deleted"
	// Replaced is a directory whose lower content is hidden: removed and
	// made again (opaque), put where a file was, or renamed. Everything
	// it holds now is listed after it as added.
	Replaced Kind = "replaced"
)

// Letter is the kind's one-letter form, as `incarnate diff` prints it.
func (k Kind) Letter() string {
	switch k {
	case Added:
		return "A"
	case Modified:
		return "M"
	case Deleted:
		return "D"
	case Replaced:
		return "R"
	}
	return "?"
}

// Change is one changed path, absolute as the session sees it.
type Change struct {
	Path string `json:"path"`
	Kind Kind   `json:"kind"`
}

// MarshalJSON writes the path as a JSON string and, when it is not valid
// UTF-8, its exact bytes as well, base64-encoded, as path_base64: a
// session may name a file with any bytes, which a JSON string cannot
// hold (encoding/json puts U+FFFD in place of each bad one), and a
// script that acts on the path needs the real one.
func (c Change) MarshalJSON() ([]byte, error) {
	type plain Change // without this method
	if utf8.ValidString(c.Path) {
		return json.Marshal(plain(c))
	}
	return json.Marshal(struct {
		plain
		PathBase64 []byte `json:"path_base64"`
	}{plain(c), []byte(c.Path)})
}

// Overlay xattr prefixes, for sessions made as root and by a user.
const (
	trustedPrefix = "trusted.overlay."
	userPrefix    = "user.overlay."
)

func xattrPrefix(userxattr bool) string {
	if userxattr {
		return userPrefix
	}
	return trustedPrefix
}

// format is how an upper dir was written, and so how it is read: the
// kernel's overlay marks opaque dirs with prefix+"opaque"; fuse-overlayfs
// with user.fuseoverlayfs.opaque and a ".wh..wh..opq" file in the
// directory, which is no entry of the session's, and it writes the owners
// it shows through a mapping (see sandbox.FuseOwner).
type format struct {
	prefix string
	fuse   bool
	// squashed: an ordinary user's fuse-overlayfs, whose owners are
	// shown through its mapping (see sandbox.FuseOwner).
	squashed bool
	// kernel are the directories of a fuse session that the kernel's
	// overlay serves (Meta.KernelDirs), read the kernel's way.
	kernel []string
	// stubs are where incarnate made stubs (see makeStubs).
	stubs map[string]bool
	// cow are the session's copy-on-write binds, source by target: below
	// a target, the source is the only lower, read the kernel's way.
	cow map[string]string
}

// fusePrefix is fuse-overlayfs's own xattr prefix.
const fusePrefix = "user.fuseoverlayfs."

// formatOf is the format of session m's upper dir.
func (s *Store) formatOf(m *Meta) format {
	f := format{prefix: xattrPrefix(m.UserXattr)}
	switch {
	case m.Fuse && !m.UserXattr:
		// As root, fuse-overlayfs writes overlay's own trusted.* marks.
		f = format{prefix: trustedPrefix, fuse: true}
	case m.Fuse:
		f = format{prefix: fusePrefix, fuse: true, squashed: true, kernel: m.KernelDirs, stubs: s.stubsOf(m.Name)}
	}
	if cow := cowBinds(m); len(cow) > 0 {
		f.cow = cow
	}
	return f
}

// owner is the id the session sees for id, as this process sees it.
func (f format) owner(id uint32) uint32 {
	if f.squashed {
		return sandbox.FuseOwner(id)
	}
	return id
}

// DiffUpper lists what the upper dir changes over the lower dirs (top
// first), with overlay xattrs named prefix+"opaque" and so on. The order
// is the tree's, each directory's entries sorted by name and a directory
// before what it holds: stable, and the order a tar must have.
func DiffUpper(upper string, lowers []string, prefix string) ([]Change, error) {
	return diffUpper(upper, lowers, format{prefix: prefix}, nil)
}

// diffUpper is DiffUpper leaving out, of the paths in mounts, those made
// only to mount on (see mountPoints).
func diffUpper(upper string, lowers []string, f format, mounts map[string]bool) ([]Change, error) {
	d := &differ{format: f, upper: upper, buf: make([]byte, 256), mounts: mounts}
	uf, err := openDir(unix.AT_FDCWD, upper, upper)
	if err != nil {
		return nil, err
	}
	defer uf.Close()
	below, err := openLowers(lowers)
	defer closeLowers(below)
	if err != nil {
		return nil, err
	}
	if err := d.root(uf, below); err != nil {
		return nil, err
	}
	err = d.walk(uf, "", below)
	return d.changes, err
}

// differ walks an upper dir. Everything is looked up relative to open
// directory fds: no path is joined or resolved again for each entry, and
// only entries of the upper dir are looked up below.
type differ struct {
	format
	upper   string
	changes []Change
	buf     []byte          // for xattr values
	mounts  map[string]bool // where mount points may have been made
}

// lowerDir is one lower layer's directory at the path being walked.
type lowerDir struct {
	f   *os.File
	xwh bool // holds xattr whiteouts (overlay.opaque="x")
	// names, once read (see listNames), are the directory's entries: a
	// name not among them needs no lookup.
	names map[string]struct{}
}

func (l lowerDir) fd() int { return int(l.f.Fd()) }

func (l lowerDir) mayHave(name string) bool {
	if l.names == nil {
		return true
	}
	_, ok := l.names[name]
	return ok
}

// manyEntries is the size of an upper dir from which the names of the
// lower dirs below it are read once, rather than each entry looked up in
// them: a lookup that misses costs a trip into the file system, a few µs,
// while reading a directory costs a fraction of that an entry. A lower
// dir much bigger than the upper one (by st_size, about 20-40 bytes an
// entry on ext4, xfs, btrfs or tmpfs) is still looked up in.
const (
	manyEntries   = 64
	maxBytesEntry = 256
)

func listNames(below []lowerDir, upperEntries int) {
	for i := range below {
		var st unix.Stat_t
		if unix.Fstat(below[i].fd(), &st) != nil || st.Size > int64(upperEntries)*maxBytesEntry {
			continue
		}
		// Through ".", as the roots are O_PATH clones (see openLower).
		f, err := openDir(below[i].fd(), ".", below[i].f.Name())
		if err != nil {
			continue // lookups will say what is wrong
		}
		names, err := f.Readdirnames(-1)
		f.Close()
		if err != nil {
			continue
		}
		set := make(map[string]struct{}, len(names))
		for _, n := range names {
			set[n] = struct{}{}
		}
		below[i].names = set
	}
}

func (d *differ) add(p string, k Kind) {
	d.changes = append(d.changes, Change{Path: p, Kind: k})
}

// added reports p, name in upper directory fd, as added, unless the
// sandbox made it only to mount on.
func (d *differ) added(fd int, name, p string) {
	if d.mounts[p] && madeToMountOn(fd, name) {
		return
	}
	d.add(p, Added)
}

// madeToMountOn reports whether name in upper directory fd was made by
// the sandbox to mount on, not by the session.
func madeToMountOn(fd int, name string) bool {
	_, err := unix.Lgetxattr(entryPath(fd, name), sandbox.MountpointXattr, nil)
	return err == nil
}

// entryPath names entry name of directory fd for the calls that take no
// dirfd (getxattr before Linux 6.13): through /proc, so that no path of
// the upper dir is resolved again, and none is longer than PATH_MAX.
func entryPath(fd int, name string) string {
	return "/proc/self/fd/" + strconv.Itoa(fd) + "/" + name
}

// root reports "/" as modified when the upper root's own mode or owner
// differ from the lower one's (a chmod of / inside).
func (d *differ) root(uf *os.File, below []lowerDir) error {
	if len(below) == 0 {
		return nil
	}
	var ust, lst unix.Stat_t
	if err := unix.Fstat(int(uf.Fd()), &ust); err != nil {
		return &os.PathError{Op: "fstat", Path: d.upper, Err: err}
	}
	if err := unix.Fstat(below[0].fd(), &lst); err != nil {
		return &os.PathError{Op: "fstat", Path: below[0].f.Name(), Err: err}
	}
	if d.ownMetaDiffers(&ust, &lst) {
		d.add("/", Modified)
	}
	return nil
}

// testHookDiffEntry, when set by a test, is called with each upper
// entry's path before it is looked at: the moment a session's rename
// would race the diff.
var testHookDiffEntry func(p string)

// walk reports the entries of upper dir uf (session path dir, "" for the
// root) over the lower dirs below.
func (d *differ) walk(uf *os.File, dir string, below []lowerDir) error {
	ents, err := uf.ReadDir(-1) // the error names uf's full path
	if err != nil {
		return err
	}
	slices.SortFunc(ents, func(a, b fs.DirEntry) int { return strings.Compare(a.Name(), b.Name()) })
	if len(ents) >= manyEntries {
		listNames(below, len(ents))
	}
	fd := int(uf.Fd())
	for _, e := range ents {
		name, p := e.Name(), dir+"/"+e.Name()
		if testHookDiffEntry != nil {
			testHookDiffEntry(p)
		}
		if d.fuse && name == layers.OpaqueWhiteout {
			continue
		}
		var err error
		switch t := e.Type(); {
		case t.IsDir():
			err = d.dir(fd, name, p, below)
		case t&fs.ModeCharDevice != 0:
			err = d.maybeWhiteout(fd, name, p, below)
		default:
			err = d.nondir(fd, name, p, below)
		}
		if err != nil {
			return err
		}
	}
	return nil
}

// nondir reports a file, link or device, name in upper directory fd.
func (d *differ) nondir(fd int, name, p string, below []lowerDir) error {
	lst, _, found, err := d.find(below, name)
	if err != nil {
		return err
	}
	if found {
		if d.fuse && d.stub(fd, name, p, &lst) {
			return nil
		}
		d.add(p, Modified)
	} else {
		d.added(fd, name, p)
	}
	return nil
}

// maybeWhiteout reports a whiteout (in an upper dir, only a 0/0 device:
// the kernel honours xattr whiteouts in lower layers only) as a deletion
// when there was something below to delete, and a device as a file.
func (d *differ) maybeWhiteout(fd int, name, p string, below []lowerDir) error {
	var st unix.Stat_t
	if err := unix.Fstatat(fd, name, &st, unix.AT_SYMLINK_NOFOLLOW); err != nil {
		return &os.PathError{Op: "lstat", Path: d.upper + p, Err: err}
	}
	if st.Rdev != 0 {
		return d.nondir(fd, name, p, below)
	}
	if _, _, found, err := d.find(below, name); err != nil || !found {
		return err
	}
	d.add(p, Deleted)
	return nil
}

// dir reports a directory of the upper dir, then walks it.
func (d *differ) dir(parent int, name, p string, below []lowerDir) error {
	if src, ok := d.cow[p]; ok {
		return d.cowDir(parent, name, p, src)
	}
	if d.fuse && slices.Contains(d.kernel, p) {
		was := d.format
		d.format = format{prefix: userPrefix}
		defer func() { d.format = was }()
	}
	uf, err := openDir(parent, name, d.upper+p)
	if err != nil {
		return err
	}
	defer uf.Close()
	ufd := int(uf.Fd())
	opaque, err := d.xattr(ufd, "opaque", d.upper+p)
	if err != nil {
		return err
	}
	redirect, err := d.xattr(ufd, "redirect", d.upper+p)
	if err != nil {
		return err
	}
	lst, at, found, err := d.find(below, name)
	if err != nil {
		return err
	}
	var next []lowerDir
	switch {
	case !found:
		d.added(parent, name, p)
	case d.fuse && d.stub(parent, name, p, &lst):
		return nil
	case opaque == "y" || redirect != "" || lst.Mode&unix.S_IFMT != unix.S_IFDIR:
		d.add(p, Replaced)
	default:
		var ust unix.Stat_t
		if err := unix.Fstat(ufd, &ust); err != nil {
			return &os.PathError{Op: "fstat", Path: d.upper + p, Err: err}
		}
		if d.ownMetaDiffers(&ust, &lst) {
			d.add(p, Modified)
		}
		next, err = d.descend(below, at, name)
		defer closeLowers(next)
		if err != nil {
			return err
		}
	}
	return d.walk(uf, p, next)
}

// stub reports whether upper path p, name in directory fd, is a stub
// still as made (see makeStubs) of the lower entry lst.
func (d *differ) stub(fd int, name, p string, lst *unix.Stat_t) bool {
	if !d.stubs[p] {
		return false
	}
	var st unix.Stat_t
	return unix.Fstatat(fd, name, &st, unix.AT_SYMLINK_NOFOLLOW) == nil && isStub(fd, name, &st, lst)
}

// cowDir walks the upper dir of a copy-on-write bind's target p over
// its source: the mount point itself is no change.
func (d *differ) cowDir(parent int, name, p, src string) error {
	uf, err := openDir(parent, name, d.upper+p)
	if err != nil {
		return err
	}
	defer uf.Close()
	lf, err := openLower(src)
	if err != nil {
		return err
	}
	below := []lowerDir{{f: lf}}
	defer closeLowers(below)
	was := d.format
	d.format = format{prefix: xattrPrefix(was.prefix != trustedPrefix)}
	defer func() { d.format = was }()
	return d.walk(uf, p, below)
}

// find looks name up in the lower dirs as overlayfs does: top first, the
// first entry found wins, a whiteout hides everything below it. at is the
// index of the layer it was found in.
func (d *differ) find(below []lowerDir, name string) (st unix.Stat_t, at int, found bool, err error) {
	for i, l := range below {
		if !l.mayHave(name) {
			continue
		}
		err := unix.Fstatat(l.fd(), name, &st, unix.AT_SYMLINK_NOFOLLOW)
		if err == unix.ENOENT {
			continue
		}
		if err != nil {
			return st, 0, false, &os.PathError{Op: "lstat", Path: l.f.Name() + "/" + name, Err: err}
		}
		wh, err := d.isWhiteout(l.fd(), name, &st, l.xwh)
		return st, i, !wh, err
	}
	return st, 0, false, nil
}

// descend opens the lower dirs that merge into directory name, from
// below[at], where find saw it, down to an opaque one, a whiteout or a
// file.
func (d *differ) descend(below []lowerDir, at int, name string) ([]lowerDir, error) {
	var next []lowerDir
	for _, l := range below[at:] {
		if !l.mayHave(name) {
			continue
		}
		var st unix.Stat_t
		err := unix.Fstatat(l.fd(), name, &st, unix.AT_SYMLINK_NOFOLLOW)
		if err == unix.ENOENT {
			continue
		}
		if err != nil {
			return next, &os.PathError{Op: "lstat", Path: l.f.Name() + "/" + name, Err: err}
		}
		if st.Mode&unix.S_IFMT != unix.S_IFDIR {
			return next, nil // a whiteout or a file ends the merge
		}
		f, err := openDir(l.fd(), name, l.f.Name()+"/"+name)
		if err != nil {
			return next, err
		}
		opaque, err := d.xattr(int(f.Fd()), "opaque", f.Name())
		next = append(next, lowerDir{f: f, xwh: opaque == "x"})
		if err != nil || opaque == "y" {
			return next, err
		}
	}
	return next, nil
}

// isWhiteout says whether the entry name of directory fd, whose lstat is
// st, is a whiteout: a 0/0 character device, or in a directory that holds
// xattr whiteouts, an empty file carrying overlay.whiteout.
func (d *differ) isWhiteout(fd int, name string, st *unix.Stat_t, xwh bool) (bool, error) {
	switch st.Mode & unix.S_IFMT {
	case unix.S_IFCHR:
		return st.Rdev == 0, nil
	case unix.S_IFREG:
		if !xwh || st.Size != 0 {
			return false, nil
		}
		p := entryPath(fd, name)
		_, err := unix.Lgetxattr(p, d.prefix+"whiteout", nil)
		if err == unix.ENODATA || err == unix.ENOTSUP {
			return false, nil
		}
		if err != nil {
			return false, &os.PathError{Op: "getxattr " + d.prefix + "whiteout", Path: p, Err: err}
		}
		return true, nil
	}
	return false, nil
}

// xattr reads overlay xattr name of the directory open as fd; "" when it
// has none. A value too long for the buffer (a long redirect) reads as
// "…": only its presence matters then.
func (d *differ) xattr(fd int, name, path string) (string, error) {
	n, err := unix.Fgetxattr(fd, d.prefix+name, d.buf)
	switch err {
	case nil:
		return string(d.buf[:n]), nil
	case unix.ENODATA, unix.ENOTSUP:
		return "", nil
	case unix.ERANGE:
		return "…", nil
	}
	return "", &os.PathError{Op: "getxattr " + d.prefix + name, Path: path, Err: err}
}

// ownMetaDiffers compares what a copy-up keeps and a chmod or chown
// changes: the type and mode bits, the owner and the group, as the
// session sees them.
func (d *differ) ownMetaDiffers(a, b *unix.Stat_t) bool {
	return a.Mode != b.Mode || d.owner(a.Uid) != d.owner(b.Uid) || d.owner(a.Gid) != d.owner(b.Gid)
}

// openDir opens directory name of dirfd, never through a symlink; path
// is its full name, for errors.
func openDir(dirfd int, name, path string) (*os.File, error) {
	fd, err := unix.Openat(dirfd, name, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, &os.PathError{Op: "open", Path: path, Err: err}
	}
	return os.NewFile(uintptr(fd), path), nil
}

func closeLowers(ls []lowerDir) {
	for _, l := range ls {
		l.f.Close()
	}
}

// Diff lists what session name changed over its base.
func (s *Store) Diff(name string) ([]Change, error) {
	m, lowers, err := s.overlayOf(name)
	if err != nil {
		return nil, err
	}
	return diffUpper(s.upperDir(name), lowers, s.formatOf(m), mountPoints(m))
}

func (s *Store) upperDir(name string) string { return filepath.Join(s.Dir(name), "upper") }

// overlayOf returns session name's metadata and lower dirs. A session
// made as root is refused to anyone else: its trusted.overlay.* xattrs
// read as absent to them, which would turn every opaque dir into a merge.
func (s *Store) overlayOf(name string) (*Meta, []string, error) {
	m, err := s.Get(name)
	if err != nil {
		return nil, nil, err
	}
	if !m.UserXattr && sandbox.Rootless() {
		return nil, nil, fmt.Errorf("session %q was made by root: only root can read its overlay markers", name)
	}
	b, err := s.Layers.Get(m.Base)
	if err != nil {
		return nil, nil, err
	}
	if err := checkMarkers(b, m.UserXattr); err != nil {
		return nil, nil, err
	}
	return m, s.Layers.LowerDirs(b), nil
}

// openLowers opens the lower dirs' roots. As root, each is opened as a
// private recursive clone of its mount tree (open_tree): the host base
// shows its submounts (a /home partition) as the session sees them,
// with the mount table as it is now, whatever a later mount does.
// Without the privilege to clone (an ordinary user), a plain open, which
// sees the same.
func openLowers(dirs []string) ([]lowerDir, error) {
	var out []lowerDir
	for _, dir := range dirs {
		f, err := openLower(dir)
		if err != nil {
			return out, err
		}
		out = append(out, lowerDir{f: f})
	}
	return out, nil
}

func openLower(dir string) (*os.File, error) {
	fd, err := unix.OpenTree(unix.AT_FDCWD, dir, unix.OPEN_TREE_CLONE|unix.OPEN_TREE_CLOEXEC|unix.AT_RECURSIVE)
	if err == nil {
		return os.NewFile(uintptr(fd), dir), nil
	}
	return openDir(unix.AT_FDCWD, dir, dir)
}
