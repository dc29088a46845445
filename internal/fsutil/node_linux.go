package fsutil

import (
	"os"
	"strconv"
	"unsafe"

	"golang.org/x/sys/unix"
)

// node is an entry of a tree being copied, as its metadata is read and
// set: by its own fd (a directory, a regular file), or, for what is not
// opened (a symlink, a device, a fifo), by its one name in its
// directory's fd, with no symlink followed. Neither leads out of the
// directory, whatever is renamed meanwhile.
type node struct {
	fd   int    // the entry's own, or -1
	dir  int    // else its directory's
	name string // and its name there
}

func fdNode(f *os.File) node             { return node{fd: int(f.Fd()), dir: -1} }
func nameNode(dir int, name string) node { return node{fd: -1, dir: dir, name: name} }

// path names a name node for the calls that take only a path (the l*
// xattr calls): its directory's fd through /proc, then its name, which
// they do not follow.
func (n node) path() string { return "/proc/self/fd/" + strconv.Itoa(n.dir) + "/" + n.name }

func (n node) chown(uid, gid int) error {
	if n.fd >= 0 {
		return unix.Fchown(n.fd, uid, gid)
	}
	return unix.Fchownat(n.dir, n.name, uid, gid, unix.AT_SYMLINK_NOFOLLOW)
}

func (n node) chmod(mode uint32) error {
	if n.fd >= 0 {
		return unix.Fchmod(n.fd, mode)
	}
	return unix.Fchmodat(n.dir, n.name, mode, 0) // never a symlink
}

func (n node) utimes(ts *[2]unix.Timespec) error {
	if n.fd >= 0 {
		return futimens(n.fd, ts)
	}
	return unix.UtimesNanoAt(n.dir, n.name, ts[:], unix.AT_SYMLINK_NOFOLLOW)
}

// futimens is utimensat(fd, NULL, ts, 0), which x/sys does not offer.
func futimens(fd int, ts *[2]unix.Timespec) error {
	_, _, e := unix.Syscall6(unix.SYS_UTIMENSAT, uintptr(fd), 0, uintptr(unsafe.Pointer(ts)), 0, 0, 0)
	if e != 0 {
		return e
	}
	return nil
}

// listXattrs and getXattr name the entry as path in their errors.
func (n node) listXattrs(path string) ([]string, error) {
	return listXattrs(path, func(buf []byte) (int, error) {
		if n.fd >= 0 {
			return unix.Flistxattr(n.fd, buf)
		}
		return unix.Llistxattr(n.path(), buf)
	})
}

func (n node) getXattr(path, name string, buf []byte) ([]byte, error) {
	return getXattr(path, name, buf, func(b []byte) (int, error) {
		if n.fd >= 0 {
			return unix.Fgetxattr(n.fd, name, b)
		}
		return unix.Lgetxattr(n.path(), name, b)
	})
}

func (n node) setXattr(name string, value []byte) error {
	if n.fd >= 0 {
		return unix.Fsetxattr(n.fd, name, value, 0)
	}
	return unix.Lsetxattr(n.path(), name, value, 0)
}

func (n node) removeXattr(name string) error {
	if n.fd >= 0 {
		return unix.Fremovexattr(n.fd, name)
	}
	return unix.Lremovexattr(n.path(), name)
}
