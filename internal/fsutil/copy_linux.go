package fsutil

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
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
	var st unix.Stat_t
	err := unix.Lstat(src, &st)
	if err == nil && st.Mode&unix.S_IFMT != unix.S_IFDIR {
		err = unix.ENOTDIR
	}
	if err == nil {
		// The tree's directories get their ACLs after their entries are
		// made, so only a default ACL above dst is ever inherited.
		_, aerr := unix.Lgetxattr(filepath.Dir(dst), "system.posix_acl_default", nil)
		c.inheritsACLs = aerr == nil
		c.start()
		c.dir(src, dst, &st, false)
		err = c.finish()
	}
	if err != nil {
		return fmt.Errorf("copy %q to %q: %w", src, dst, err)
	}
	return nil
}

// treeCopier walks the source tree in one goroutine, making directories,
// links and special files itself and handing regular files to workers.
// Directory metadata is set last, once nothing more is written into them.
type treeCopier struct {
	files   chan copyJob
	workers sync.WaitGroup
	failed  atomic.Pointer[error]
	reflink atomic.Bool // FICLONE has not failed yet
	copied  func(n int) // told of bytes copied
	// inheritsACLs: dst's parent has a default ACL, which every entry
	// made below it inherits until setMeta removes what src lacks.
	inheritsACLs bool
	linked       map[[2]uint64]string // first copy of each multiply-linked inode
	dirs         []copyJob            // directories, in the order they were made
	// drop, when set, names the xattrs left out of the copy.
	drop func(name string) bool
}

type copyJob struct {
	src, dst string
	st       unix.Stat_t
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
			}
		}()
	}
}

// finish waits for the workers, then sets every directory's owner, mode,
// attributes and times, deepest first so a read-only parent is done last.
func (c *treeCopier) finish() error {
	close(c.files)
	c.workers.Wait()
	for i := len(c.dirs) - 1; i >= 0 && c.failed.Load() == nil; i-- {
		c.fail(c.setMeta(c.dirs[i]))
	}
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

// deepPath is the length from which a directory's entries are named
// through open fds of it (/proc/self/fd/N/NAME) rather than by their
// whole path, which PATH_MAX would refuse a little further down: a
// session can make a tree of any depth.
const deepPath = unix.PathMax / 2

// dir makes dst (writable by us until finish sets its real mode) and
// copies src's entries into it. Below deepPath, it holds fds of both
// directories while it copies their entries, every one of them at once
// (so nothing refers to the fds once they are closed), and sets the
// directory's own metadata when done.
func (c *treeCopier) dir(src, dst string, st *unix.Stat_t, deep bool) {
	if err := unix.Mkdir(dst, 0o700); err != nil {
		c.fail(&os.PathError{Op: "mkdir", Path: dst, Err: err})
		return
	}
	f, err := os.OpenFile(src, os.O_RDONLY|unix.O_DIRECTORY|unix.O_NOFOLLOW, 0)
	if err != nil {
		c.fail(err)
		return
	}
	defer f.Close()
	srcAt, dstAt, now := src, dst, false
	if deep || len(src) > deepPath || len(dst) > deepPath {
		dfd, err := unix.Open(dst, unix.O_PATH|unix.O_DIRECTORY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
		if err != nil {
			c.fail(&os.PathError{Op: "open", Path: dst, Err: err})
			return
		}
		defer unix.Close(dfd)
		srcAt, dstAt, now = fdPath(int(f.Fd())), fdPath(dfd), true
		defer func() {
			if c.failed.Load() == nil {
				c.fail(c.setMeta(copyJob{src: src, dst: dst, st: *st}))
			}
		}()
	} else {
		c.dirs = append(c.dirs, copyJob{src: src, dst: dst, st: *st})
	}
	for c.failed.Load() == nil {
		names, err := f.Readdirnames(1024)
		for _, n := range names {
			c.entry(srcAt+"/"+n, dstAt+"/"+n, now)
		}
		if err == io.EOF {
			return
		}
		if err != nil {
			c.fail(&os.PathError{Op: "readdir", Path: src, Err: err})
			return
		}
	}
}

// fdPath names what directory fd is open on, in a short path.
func fdPath(fd int) string { return "/proc/self/fd/" + strconv.Itoa(fd) }

// entry copies src to dst; now, for an entry named through fds (see
// dir), copies a file here rather than by a worker later, and a hard
// link down there as a file of its own (the first copy's name would not
// outlive the fds).
func (c *treeCopier) entry(src, dst string, now bool) {
	if c.failed.Load() != nil {
		return
	}
	j := copyJob{src: src, dst: dst}
	if err := unix.Lstat(src, &j.st); err != nil {
		c.fail(&os.PathError{Op: "lstat", Path: src, Err: err})
		return
	}
	if j.st.Mode&unix.S_IFMT == unix.S_IFDIR {
		c.dir(src, dst, &j.st, now)
		return
	}
	if j.st.Nlink > 1 && !now {
		// Every name of an inode after the first becomes a link to the
		// first copy, which is therefore made here, not by a worker.
		key := [2]uint64{j.st.Dev, j.st.Ino}
		if first, ok := c.linked[key]; ok {
			c.fail(linkErr(unix.Link(first, dst), first, dst))
			return
		}
		c.linked[key] = dst
		c.fail(c.nonDir(j))
		return
	}
	if j.st.Mode&unix.S_IFMT == unix.S_IFREG && !now {
		c.files <- j
		return
	}
	c.fail(c.nonDir(j))
}

func (c *treeCopier) nonDir(j copyJob) error {
	switch j.st.Mode & unix.S_IFMT {
	case unix.S_IFREG:
		return c.file(j)
	case unix.S_IFLNK:
		target, err := os.Readlink(j.src)
		if err == nil {
			err = os.Symlink(target, j.dst)
		}
		if err != nil {
			return err
		}
	default: // devices (whiteouts among them), fifos, sockets
		if err := unix.Mknod(j.dst, j.st.Mode, int(j.st.Rdev)); err != nil {
			return &os.PathError{Op: "mknod", Path: j.dst, Err: err}
		}
	}
	return c.setMeta(j)
}

func linkErr(err error, first, dst string) error {
	if err != nil {
		return &os.LinkError{Op: "link", Old: first, New: dst, Err: err}
	}
	return nil
}

// file copies a regular file's content, then its metadata.
func (c *treeCopier) file(j copyJob) error {
	in, err := os.OpenFile(j.src, os.O_RDONLY|unix.O_NOFOLLOW, 0)
	if err != nil {
		return err
	}
	defer in.Close()
	out, err := os.OpenFile(j.dst, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return err
	}
	err = c.content(out, in, &j.st)
	if cerr := out.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("%s: %w", j.src, err)
	}
	return c.setMeta(j)
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

// setMeta gives path st's owner, attributes, mode and times, in the
// order that keeps each: chown clears set-id bits and file capabilities,
// so they come after it. An owner the caller may not set is left as cp -a
// leaves it, the copy then the caller's, and so are its set-id bits:
// a set-uid file of another user must not become a set-uid file of ours.
func (c *treeCopier) setMeta(j copyJob) error {
	path, st := j.dst, &j.st
	mode := st.Mode & 0o7777
	if err := unix.Lchown(path, int(st.Uid), int(st.Gid)); err != nil {
		if !notAllowed(err) {
			return &os.PathError{Op: "chown", Path: path, Err: err}
		}
		mode &^= unix.S_ISUID | unix.S_ISGID
	}
	if err := copyXattrs(j.src, path, c.inheritsACLs, c.drop); err != nil {
		return err
	}
	if st.Mode&unix.S_IFMT != unix.S_IFLNK {
		if err := unix.Chmod(path, mode); err != nil {
			return &os.PathError{Op: "chmod", Path: path, Err: err}
		}
	}
	times := []unix.Timespec{st.Atim, st.Mtim}
	if err := unix.UtimesNanoAt(unix.AT_FDCWD, path, times, unix.AT_SYMLINK_NOFOLLOW); err != nil {
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
// ordinary user) are left out, as cp -a leaves them. With inherited, ACLs
// dst has and src lacks are removed.
func copyXattrs(src, dst string, inherited bool, drop func(string) bool) error {
	names, err := ListXattrs(src)
	if err != nil {
		return err
	}
	var buf []byte
	for _, name := range names {
		if drop != nil && drop(name) {
			continue
		}
		buf, err = GetXattr(src, name, buf)
		if err != nil {
			return err
		}
		err := unix.Lsetxattr(dst, name, buf, 0)
		if err != nil && (!notAllowed(err) || slices.Contains(aclNames, name)) {
			return &os.PathError{Op: "setxattr " + name, Path: dst, Err: err}
		}
	}
	for _, name := range aclNames {
		if !inherited || slices.Contains(names, name) {
			continue
		}
		if err := unix.Lremovexattr(dst, name); err != nil && !errors.Is(err, unix.ENODATA) && !errors.Is(err, unix.ENOTSUP) && !errors.Is(err, unix.EPERM) {
			return &os.PathError{Op: "removexattr " + name, Path: dst, Err: err}
		}
	}
	return nil
}
