package fsutil

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"sync"
	"sync/atomic"

	"golang.org/x/sys/unix"
)

// CopyTree copies src to dst exactly: owners (where the caller may set
// them), modes, timestamps, extended attributes (overlay whiteouts and
// opaque markers among them), device nodes, hard links and holes, with
// reflinks where the file system has them. dst must not exist. copied,
// when not nil, is told of the bytes of content copied as they are, from
// several goroutines at once.
//
// It does what `cp -a --reflink=auto` does, and used to call it, but
// copies several files at once: one core moving pages through the page
// cache is the limit of a big copy, and with two workers 1 GiB of files
// copied in about three quarters of cp's time on a two-core machine.
//
// src is read by fd alone (see treeCopier), so a session that renames
// and swaps in symlinks while its upper dir is copied cannot point the
// copy at the host's files, and a tree of any depth is copied. A mount
// inside src is refused (ErrCrossesMount): it is not the tree's.
func CopyTree(src, dst string, copied func(n int)) error {
	return copyTree(newTreeCopier(copied), src, dst)
}

// CopyForeignTree is CopyTree for a tree incarnate did not make (a
// directory being imported): overlay's own xattrs there are someone
// else's markers, which the overlay would take for its whiteouts, opaque
// dirs and redirects, so they are left out.
func CopyForeignTree(src, dst string, copied func(n int)) error {
	c := newTreeCopier(copied)
	c.drop = IsOverlayXattr
	return copyTree(c, src, dst)
}

// IsOverlayXattr reports whether name is one of overlayfs's own: trusted.*
// as root mounts it, user.* in a user namespace (userxattr), and
// fuse-overlayfs's user.fuseoverlayfs.*.
func IsOverlayXattr(name string) bool {
	return strings.HasPrefix(name, "trusted.overlay.") || strings.HasPrefix(name, "user.overlay.") || strings.HasPrefix(name, "user.fuseoverlayfs.")
}

func copyTree(c *treeCopier, src, dst string) error {
	if err := c.copyRoot(src, dst); err != nil {
		return fmt.Errorf("copy %q to %q: %w", src, dst, err)
	}
	return nil
}

// copyRoot opens both roots and copies one into the other. dst's
// parent is the caller's, and so is every directory the copy makes.
func (c *treeCopier) copyRoot(src, dst string) error {
	fd, err := unix.Open(src, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
	if err != nil {
		return &os.PathError{Op: "open", Path: src, Err: err}
	}
	in := os.NewFile(uintptr(fd), src)
	st, m, err := statAt(fd, "")
	if err != nil {
		in.Close()
		return &os.PathError{Op: "stat", Path: src, Err: err}
	}
	c.mount, c.src = m, src
	parent, err := unix.Open(filepath.Dir(dst), unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		in.Close()
		return &os.PathError{Op: "open", Path: filepath.Dir(dst), Err: err}
	}
	defer unix.Close(parent)
	out, err := makeDir(parent, filepath.Base(dst), dst)
	if err != nil {
		in.Close()
		return err
	}
	// Hard links are made relative to the copy's root.
	if c.root, err = unix.Dup(int(out.Fd())); err != nil {
		in.Close()
		out.Close()
		return err
	}
	defer unix.Close(c.root)
	// The tree's directories get their ACLs after their entries are
	// made, so only a default ACL above dst is ever inherited.
	_, aerr := unix.Lgetxattr(filepath.Dir(dst), "system.posix_acl_default", nil)
	c.inheritsACLs = aerr == nil
	c.start()
	c.dir(in, out, &st, "")
	return c.finish()
}

// testHookEntry, when set by a test, is called with each entry's path
// below the source's root before the entry is looked at: the moment a
// session's rename would race the copy.
var testHookEntry func(rel string)

// treeCopier walks the source tree in one goroutine, making directories,
// links and special files itself and handing regular files to workers.
//
// Nothing of the source is named by a path below its root: each entry is
// looked at with fstatat beneath its directory's fd, a directory or a
// regular file is then opened beneath it with no symlink followed (and
// no mount crossed) and everything else about it is read from its own
// fd, which no later rename can change. A symlink, a device or a fifo
// is not opened (a fifo would block, a device would be opened): its
// link, attributes and metadata are read by its one name in its
// directory's fd, which cannot lead out of that directory. The copy is
// made the same way, by fds of the directories it made.
//
// A directory's own metadata is set once its entries are all made:
// writing a file's content or metadata does not change its directory.
type treeCopier struct {
	files   chan copyJob
	workers sync.WaitGroup
	failed  atomic.Pointer[error]
	reflink atomic.Bool // FICLONE has not failed yet
	copied  func(n int) // told of bytes copied
	// inheritsACLs: dst's parent has a default ACL, which every entry
	// made below it inherits until setMeta removes what src lacks.
	inheritsACLs bool
	src          string // for messages
	mount        mount  // the source's, which the copy does not leave
	root         int    // the copy's root directory
	// linked is the first copy of each multiply-linked inode, by its
	// path below root: the later names are links to it.
	linked map[[2]uint64]string
	// drop, when set, names the xattrs left out of the copy.
	drop func(name string) bool
}

// copyJob is a regular file for a worker: its source open for reading,
// its copy made and open for writing.
type copyJob struct {
	in, out *os.File
	st      unix.Stat_t
}

func newTreeCopier(copied func(n int)) *treeCopier {
	if copied == nil {
		copied = func(int) {}
	}
	c := &treeCopier{files: make(chan copyJob, 256), linked: map[[2]uint64]string{}, copied: copied}
	c.reflink.Store(true)
	return c
}

func (c *treeCopier) start() {
	n := min(max(runtime.NumCPU(), 2), 8)
	c.workers.Add(n)
	for range n {
		go func() {
			defer c.workers.Done()
			for j := range c.files {
				if c.failed.Load() == nil {
					c.fail(c.file(j))
				}
				j.in.Close()
				j.out.Close()
			}
		}()
	}
}

// finish waits for the workers and says how the copy went.
func (c *treeCopier) finish() error {
	close(c.files)
	c.workers.Wait()
	if p := c.failed.Load(); p != nil {
		return *p
	}
	return nil
}

func (c *treeCopier) fail(err error) {
	if err != nil {
		c.failed.CompareAndSwap(nil, &err)
	}
}

// linkable is how long a path below the copy's root the first copy of a
// hard-linked inode may have for later names to be linked to it; deeper
// down (a session can make a tree of any depth) they are copies of
// their own, as PATH_MAX would refuse the link.
const linkable = unix.PathMax / 2

// dir copies the entries of directory in (rel below the source's root)
// into out, its copy, then gives out in's metadata st, and closes both.
func (c *treeCopier) dir(in, out *os.File, st *unix.Stat_t, rel string) {
	defer in.Close()
	defer out.Close()
	for c.failed.Load() == nil {
		names, err := in.Readdirnames(1024)
		for _, n := range names {
			c.entry(in, out, n, rel+"/"+n)
		}
		if err == io.EOF {
			break
		}
		if err != nil {
			c.fail(&os.PathError{Op: "readdir", Path: c.at(rel), Err: err})
			return
		}
	}
	if c.failed.Load() == nil {
		c.fail(c.setMeta(fdNode(in), fdNode(out), st, c.at(rel)))
	}
}

// at names the source entry rel for messages.
func (c *treeCopier) at(rel string) string { return ShortJoin(c.src, strings.TrimPrefix(rel, "/")) }

// entry copies name, of directory in, into out; rel is where it is
// below the source's root.
func (c *treeCopier) entry(in, out *os.File, name, rel string) {
	if c.failed.Load() != nil {
		return
	}
	if testHookEntry != nil {
		testHookEntry(rel[1:])
	}
	st, m, err := statAt(int(in.Fd()), name)
	if err != nil {
		c.fail(&os.PathError{Op: "lstat", Path: c.at(rel), Err: err})
		return
	}
	if m != c.mount {
		c.fail(fmt.Errorf("%s: %w", c.at(rel), ErrCrossesMount))
		return
	}
	switch st.Mode & unix.S_IFMT {
	case unix.S_IFDIR:
		c.subdir(in, out, name, rel)
	case unix.S_IFREG:
		c.fail(c.regular(in, out, name, rel))
	default:
		c.fail(c.special(in, out, name, rel, &st))
	}
}

// subdir opens directory name beneath in, makes its copy in out, and
// copies it.
func (c *treeCopier) subdir(in, out *os.File, name, rel string) {
	fd, err := openDirBeneath(int(in.Fd()), name)
	if errors.Is(err, unix.EXDEV) {
		err = ErrCrossesMount
	}
	if err != nil {
		c.fail(&os.PathError{Op: "open", Path: c.at(rel), Err: err})
		return
	}
	sub := os.NewFile(uintptr(fd), c.at(rel))
	st, err := c.own(sub, unix.S_IFDIR)
	if err != nil {
		sub.Close()
		c.fail(err)
		return
	}
	subOut, err := makeDir(int(out.Fd()), name, c.at(rel))
	if err != nil {
		sub.Close()
		c.fail(err)
		return
	}
	c.dir(sub, subOut, &st, rel)
}

// own is the stat of f, which the copy took to be of type kind on the
// source's mount: what the fd is open on, whatever has been renamed
// since it was looked at by name.
func (c *treeCopier) own(f *os.File, kind uint32) (unix.Stat_t, error) {
	st, m, err := statAt(int(f.Fd()), "")
	switch {
	case err != nil:
		return st, &os.PathError{Op: "stat", Path: f.Name(), Err: err}
	case m != c.mount:
		return st, fmt.Errorf("%s: %w", f.Name(), ErrCrossesMount)
	case st.Mode&unix.S_IFMT != kind:
		return st, fmt.Errorf("%s changed while it was copied", f.Name())
	}
	return st, nil
}

// makeDir makes directory name in dirfd, writable by us until its
// metadata is set, and opens it.
func makeDir(dirfd int, name, path string) (*os.File, error) {
	if err := unix.Mkdirat(dirfd, name, 0o700); err != nil {
		return nil, &os.PathError{Op: "mkdir", Path: path, Err: err}
	}
	fd, err := unix.Openat(dirfd, name, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, &os.PathError{Op: "open", Path: path, Err: err}
	}
	return os.NewFile(uintptr(fd), path), nil
}

// regular opens file name beneath in and hands it to a worker with its
// copy made in out; a later name of an inode already copied becomes a
// link to that copy instead.
func (c *treeCopier) regular(in, out *os.File, name, rel string) error {
	// O_NONBLOCK|O_NOCTTY: were it swapped for a fifo or a terminal
	// since it was looked at, the open neither blocks nor takes it.
	fd, err := unix.Openat(int(in.Fd()), name, unix.O_RDONLY|unix.O_NOFOLLOW|unix.O_NONBLOCK|unix.O_NOCTTY|unix.O_CLOEXEC, 0)
	if err != nil {
		return &os.PathError{Op: "open", Path: c.at(rel), Err: err}
	}
	src := os.NewFile(uintptr(fd), c.at(rel))
	st, err := c.own(src, unix.S_IFREG)
	linked := false
	if err == nil {
		linked, err = c.link(out, name, rel, &st)
	}
	if linked || err != nil {
		src.Close()
		return err
	}
	ofd, err := unix.Openat(int(out.Fd()), name, unix.O_WRONLY|unix.O_CREAT|unix.O_EXCL|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0o600)
	if err != nil {
		src.Close()
		return &os.PathError{Op: "create", Path: c.at(rel), Err: err}
	}
	c.files <- copyJob{in: src, out: os.NewFile(uintptr(ofd), c.at(rel)), st: st}
	return nil
}

// link makes name in out a link to the copy of st's inode made before,
// if there is one (done); else it records rel as that copy, to be made
// by the caller. The first copy exists from the moment it is made, so
// a link to it needs no wait for its content.
func (c *treeCopier) link(out *os.File, name, rel string, st *unix.Stat_t) (done bool, err error) {
	if st.Nlink < 2 {
		return false, nil
	}
	key := [2]uint64{st.Dev, st.Ino}
	if first, ok := c.linked[key]; ok {
		if err := unix.Linkat(c.root, first, int(out.Fd()), name, 0); err != nil {
			return false, &os.LinkError{Op: "link", Old: c.at(first), New: c.at(rel), Err: err}
		}
		return true, nil
	}
	if len(rel) < linkable {
		c.linked[key] = "." + rel
	}
	return false, nil
}

// special copies what is neither a directory nor a regular file: a
// symlink, a device (whiteouts among them), a fifo or a socket.
func (c *treeCopier) special(in, out *os.File, name, rel string, st *unix.Stat_t) error {
	if done, err := c.link(out, name, rel, st); done || err != nil {
		return err
	}
	infd, outfd := int(in.Fd()), int(out.Fd())
	if st.Mode&unix.S_IFMT == unix.S_IFLNK {
		target, err := readlinkAt(infd, name, st.Size)
		if err == nil {
			err = unix.Symlinkat(target, outfd, name)
		}
		if err != nil {
			return &os.PathError{Op: "symlink", Path: c.at(rel), Err: err}
		}
	} else if err := unix.Mknodat(outfd, name, st.Mode, int(st.Rdev)); err != nil {
		return &os.PathError{Op: "mknod", Path: c.at(rel), Err: err}
	}
	return c.setMeta(nameNode(infd, name), nameNode(outfd, name), st, c.at(rel))
}

// readlinkAt reads symlink name in dirfd, size bytes long by its lstat
// (and grown, should it have grown since).
func readlinkAt(dirfd int, name string, size int64) (string, error) {
	buf := make([]byte, max(size+1, 64))
	for {
		n, err := unix.Readlinkat(dirfd, name, buf)
		if err != nil {
			return "", err
		}
		if n < len(buf) {
			return string(buf[:n]), nil
		}
		buf = make([]byte, 2*len(buf))
	}
}

// file copies a regular file's content, then its metadata.
func (c *treeCopier) file(j copyJob) error {
	if err := c.content(j.out, j.in, &j.st); err != nil {
		return fmt.Errorf("%s: %w", j.in.Name(), err)
	}
	return c.setMeta(fdNode(j.in), fdNode(j.out), &j.st, j.in.Name())
}

// content shares the blocks when the file system can, else copies the
// data in the kernel, skipping holes so a sparse file stays sparse.
func (c *treeCopier) content(out, in *os.File, st *unix.Stat_t) error {
	if st.Size == 0 {
		return nil
	}
	if c.reflink.Load() {
		err := unix.IoctlFileClone(int(out.Fd()), int(in.Fd()))
		if err == nil {
			c.copied(int(st.Size))
			return nil
		}
		if errors.Is(err, unix.EOPNOTSUPP) || errors.Is(err, unix.EXDEV) || errors.Is(err, unix.ENOTTY) || errors.Is(err, unix.ENOSYS) {
			c.reflink.Store(false) // ext4, tmpfs, another file system: not again
		}
	}
	if st.Blocks*512 >= st.Size {
		return c.copyRange(out, in, 0, st.Size)
	}
	for off := int64(0); off < st.Size; {
		data, err := unix.Seek(int(in.Fd()), off, unix.SEEK_DATA)
		if errors.Is(err, unix.ENXIO) {
			break // only a hole is left
		}
		if err != nil {
			return err
		}
		hole, err := unix.Seek(int(in.Fd()), data, unix.SEEK_HOLE)
		if err != nil {
			return err
		}
		if err := c.copyRange(out, in, data, hole-data); err != nil {
			return err
		}
		off = hole
	}
	return out.Truncate(st.Size)
}

// copyRange copies n bytes at off from in to the same offset in out, in
// chunks small enough for the progress line to move.
func (c *treeCopier) copyRange(out, in *os.File, off, n int64) error {
	for n > 0 {
		roff, woff := off, off
		m, err := unix.CopyFileRange(int(in.Fd()), &roff, int(out.Fd()), &woff, int(min(n, 8<<20)), 0)
		if err != nil {
			if errors.Is(err, unix.EINTR) {
				continue
			}
			if errors.Is(err, unix.EXDEV) || errors.Is(err, unix.ENOSYS) || errors.Is(err, unix.EOPNOTSUPP) || errors.Is(err, unix.EINVAL) {
				return c.copyBuffered(out, in, off, n)
			}
			return err
		}
		if m == 0 {
			return nil // the file shrank under us
		}
		c.copied(m)
		off, n = off+int64(m), n-int64(m)
	}
	return nil
}

func (c *treeCopier) copyBuffered(out, in *os.File, off, n int64) error {
	buf := make([]byte, min(n, 1<<20))
	for n > 0 {
		m, err := in.ReadAt(buf[:min(n, int64(len(buf)))], off)
		if m > 0 {
			if _, werr := out.WriteAt(buf[:m], off); werr != nil {
				return werr
			}
			c.copied(m)
		}
		if err == io.EOF {
			return nil // the file shrank under us
		}
		if err != nil {
			return err
		}
		off, n = off+int64(m), n-int64(m)
	}
	return nil
}

// setMeta gives dst src's attributes and st's owner, mode and times, in
// the order that keeps each: chown clears set-id bits and file
// capabilities, so they come after it. An owner the caller may not set
// is left as cp -a leaves it, the copy then the caller's, and so are its
// set-id bits: a set-uid file of another user must not become a set-uid
// file of ours. path names the source in messages.
func (c *treeCopier) setMeta(src, dst node, st *unix.Stat_t, path string) error {
	mode := st.Mode & 0o7777
	if err := dst.chown(int(st.Uid), int(st.Gid)); err != nil {
		if !notAllowed(err) {
			return &os.PathError{Op: "chown", Path: path, Err: err}
		}
		mode &^= unix.S_ISUID | unix.S_ISGID
	}
	if err := c.copyXattrs(src, dst, path); err != nil {
		return err
	}
	if st.Mode&unix.S_IFMT != unix.S_IFLNK {
		if err := dst.chmod(mode); err != nil {
			return &os.PathError{Op: "chmod", Path: path, Err: err}
		}
	}
	if err := dst.utimes(&[2]unix.Timespec{st.Atim, st.Mtim}); err != nil {
		return &os.PathError{Op: "utimes", Path: path, Err: err}
	}
	return nil
}

func notAllowed(err error) bool {
	return errors.Is(err, unix.EPERM) || errors.Is(err, unix.EINVAL) || errors.Is(err, unix.ENOTSUP) || errors.Is(err, unix.EACCES)
}

// aclNames are the attributes that hold POSIX ACLs. Dropping one would
// widen access (the mode's group bits are then the ACL's mask), so an
// ACL that cannot be set is an error, and one the copy inherited from
// its new parent's default ACL but the source lacks is removed.
var aclNames = []string{"system.posix_acl_access", "system.posix_acl_default"}

// copyXattrs copies every extended attribute of src the caller can read
// to dst. Those of namespaces the caller may not write (trusted.* as an
// ordinary user) are left out, as cp -a leaves them. Under an inherited
// default ACL, ACLs dst has and src lacks are removed.
func (c *treeCopier) copyXattrs(src, dst node, path string) error {
	names, err := src.listXattrs(path)
	if err != nil {
		return err
	}
	var buf []byte
	for _, name := range names {
		if c.drop != nil && c.drop(name) {
			continue
		}
		buf, err = src.getXattr(path, name, buf)
		if err != nil {
			return err
		}
		err := dst.setXattr(name, buf)
		if err != nil && (!notAllowed(err) || slices.Contains(aclNames, name)) {
			return &os.PathError{Op: "setxattr " + name, Path: path, Err: err}
		}
	}
	for _, name := range aclNames {
		if !c.inheritsACLs || slices.Contains(names, name) {
			continue
		}
		if err := dst.removeXattr(name); err != nil && !errors.Is(err, unix.ENODATA) && !errors.Is(err, unix.ENOTSUP) && !errors.Is(err, unix.EPERM) {
			return &os.PathError{Op: "removexattr " + name, Path: path, Err: err}
		}
	}
	return nil
}
