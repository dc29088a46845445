package fsutil

import (
	"os"

	"golang.org/x/sys/unix"
)

// statAt is fstatat(dirfd, name) with no symlink followed, through statx
// for the mount id as well (an empty name: dirfd itself). The mount id
// is what tells a bind mount apart: a directory of the same file system
// bound inside a tree has the same st_dev as the tree, and only its
// mount id says that it is somewhere else.
func statAt(dirfd int, name string) (unix.Stat_t, mount, error) {
	flags := unix.AT_SYMLINK_NOFOLLOW | unix.AT_STATX_SYNC_AS_STAT
	if name == "" {
		flags |= unix.AT_EMPTY_PATH
	}
	var x unix.Statx_t
	if err := unix.Statx(dirfd, name, flags, unix.STATX_BASIC_STATS|unix.STATX_MNT_ID, &x); err != nil {
		return unix.Stat_t{}, mount{}, err
	}
	return statOf(&x), mountOf(&x), nil
}

// mount names the mount an entry is on: its mount id, or on a kernel
// without one in statx (before 5.8), its device, which at least stops a
// walk at another file system.
type mount struct {
	id    uint64
	byDev bool
}

func mountOf(x *unix.Statx_t) mount {
	if x.Mask&unix.STATX_MNT_ID != 0 {
		return mount{id: x.Mnt_id}
	}
	return mount{id: unix.Mkdev(x.Dev_major, x.Dev_minor), byDev: true}
}

// statOf is x as fstat would have filled it in.
func statOf(x *unix.Statx_t) unix.Stat_t {
	st := unix.Stat_t{
		Dev:  unix.Mkdev(x.Dev_major, x.Dev_minor),
		Ino:  x.Ino,
		Uid:  x.Uid,
		Gid:  x.Gid,
		Rdev: unix.Mkdev(x.Rdev_major, x.Rdev_minor),
		Size: int64(x.Size),
	}
	// Some fields' widths differ between architectures.
	set(&st.Nlink, int64(x.Nlink))
	set(&st.Mode, int64(x.Mode))
	set(&st.Blksize, int64(x.Blksize))
	set(&st.Blocks, int64(x.Blocks))
	for _, t := range []struct {
		to   *unix.Timespec
		from unix.StatxTimestamp
	}{{&st.Atim, x.Atime}, {&st.Mtim, x.Mtime}, {&st.Ctim, x.Ctime}} {
		set(&t.to.Sec, t.from.Sec)
		set(&t.to.Nsec, int64(t.from.Nsec))
	}
	return st
}

func set[T ~int32 | ~int64 | ~uint32 | ~uint64](p *T, v int64) { *p = T(v) }

// lstatPath is statAt of a whole path, for a tree's root.
func lstatPath(path string) (unix.Stat_t, error) {
	st, _, err := statAt(unix.AT_FDCWD, path)
	if err != nil {
		err = &os.PathError{Op: "lstat", Path: path, Err: err}
	}
	return st, err
}
