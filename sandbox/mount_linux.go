package sandbox

import (
	"errors"
	"os"
	"path/filepath"

	"golang.org/x/sys/unix"
)

func (o MountOverlay) apply(st *state) error {
	err := o.mount(st)
	if err != nil && o.Optional {
		if o.Note != "" {
			st.notes = append(st.notes, o.Note+" ("+err.Error()+")")
		}
		return nil // the directory stays as the root below shows it
	}
	if err == nil && st.root == "" {
		st.root = o.Target
	}
	return err
}

func (o MountOverlay) mount(st *state) error {
	// An overlay inside the root (a submount's) goes on a mount point
	// resolved there, like every other mount.
	at, done, err := st.mountpoint(o.Target, dirKind)
	if err != nil {
		return err
	}
	defer done()
	o.Target = at
	if o.IDMap {
		// Never the legacy path, which would mount with the identity map.
		return mountIdmappedOverlay(o, st.idmap)
	}
	if !o.Legacy {
		err = mountOverlayFds(o, layerFds{})
	}
	if o.Legacy || errors.Is(err, unix.ENOSYS) || errors.Is(err, errSetFdRefused) {
		err = mountOverlayLegacy(o)
	}
	return err
}

// errSetFdRefused marks a kernel that has fsopen but not layers given as
// file descriptors (before 6.13), so the legacy path is tried.
var errSetFdRefused = errors.New("overlay layers by fd not supported")

// mountOverlayFds mounts through the new mount API and hands every layer
// over as an open directory, so no path is ever parsed: commas, colons and
// backslashes need no escaping, and there is no page limit on the total.
func mountOverlayFds(o MountOverlay, given layerFds) error {
	fsfd, err := unix.Fsopen("overlay", unix.FSOPEN_CLOEXEC)
	if err != nil {
		return step("fsopen", "overlay", err)
	}
	defer unix.Close(fsfd)
	setDir := func(key, dir string) error {
		fd, ok := given[dir]
		if !ok {
			if fd, err = unix.Open(dir, unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0); err != nil {
				return step("open", dir, err)
			}
			defer unix.Close(fd)
		}
		if err := unix.FsconfigSetFd(fsfd, key, fd); err != nil {
			if err == unix.EINVAL {
				return step("fsconfig "+key, dir, errors.Join(errSetFdRefused, err))
			}
			return step("fsconfig "+key, dir, err)
		}
		return nil
	}
	for _, l := range o.Lowers {
		if err := setDir("lowerdir+", l); err != nil {
			return err
		}
	}
	if err := setDir("upperdir", o.Upper); err != nil {
		return err
	}
	if err := setDir("workdir", o.Work); err != nil {
		return err
	}
	if o.UserXattr {
		if err := unix.FsconfigSetFlag(fsfd, "userxattr"); err != nil {
			return step("fsconfig userxattr", o.Target, err)
		}
	}
	if err := unix.FsconfigCreate(fsfd); err != nil {
		return step("fsconfig create", o.Target, err)
	}
	// nosuid and nodev: nothing a session writes may become a setuid
	// binary or a device node that works.
	mfd, err := unix.Fsmount(fsfd, unix.FSMOUNT_CLOEXEC, unix.MOUNT_ATTR_NOSUID|unix.MOUNT_ATTR_NODEV)
	if err != nil {
		return step("fsmount", o.Target, err)
	}
	defer unix.Close(mfd)
	// T_SYMLINKS: a target inside the root is a /proc/self/fd link.
	return step("move_mount", o.Target, unix.MoveMount(mfd, "", unix.AT_FDCWD, o.Target, unix.MOVE_MOUNT_F_EMPTY_PATH|unix.MOVE_MOUNT_T_SYMLINKS))
}

// mountOverlayLegacy is the mount(2) fallback for older kernels, with
// escaped paths and the page limit checked rather than hit.
func mountOverlayLegacy(o MountOverlay) error {
	opts, err := o.LegacyOptions()
	if err != nil {
		return step("mount overlay", o.Target, err)
	}
	return step("mount overlay", o.Target,
		unix.Mount("overlay", o.Target, "overlay", unix.MS_NOSUID|unix.MS_NODEV, opts))
}

// bindFlags are the mount attributes a bind gets, on every mount of the
// tree it binds.
type bindFlags uint64

const (
	// bindData is any bind of host files: nothing set-id or a device
	// node in it works inside.
	bindData = bindFlags(unix.MOUNT_ATTR_NOSUID | unix.MOUNT_ATTR_NODEV)
	// bindReadOnly is bindData, read-only.
	bindReadOnly = bindData | unix.MOUNT_ATTR_RDONLY
	// bindDevice is a host device node: usable, but read-only, so that
	// writes still reach the device while chmod and chown of the host's
	// node fail.
	bindDevice = bindFlags(unix.MOUNT_ATTR_NOSUID | unix.MOUNT_ATTR_RDONLY)
)

// bindTree binds src, with everything mounted below it, onto dst with
// flags on all of it. The dst is created to match.
func bindTree(st *state, src, dst string, flags bindFlags) error {
	fi, err := os.Stat(src)
	if err != nil {
		return step("stat", src, err)
	}
	k := fileKind
	if fi.IsDir() {
		k = dirKind
	}
	p, done, err := st.mountpoint(dst, k)
	if err != nil {
		return err
	}
	defer done()
	return bindAt(src, p, dst, flags)
}

// bindAt binds src onto the resolved mount point p; dst names it in errors.
func bindAt(src, p, dst string, flags bindFlags) error {
	fd, err := unix.OpenTree(unix.AT_FDCWD, src, unix.OPEN_TREE_CLONE|unix.OPEN_TREE_CLOEXEC|unix.AT_RECURSIVE)
	if err == unix.ENOSYS {
		return bindTreeLegacy(src, p, dst, flags)
	}
	if err != nil {
		return step("open_tree", src, err)
	}
	defer unix.Close(fd)
	// AT_RECURSIVE reaches the submounts too, which a remount of the top
	// mount alone (the legacy path) cannot.
	attr := &unix.MountAttr{Attr_set: uint64(flags)}
	if err := unix.MountSetattr(fd, "", unix.AT_EMPTY_PATH|unix.AT_RECURSIVE, attr); err != nil {
		return step("mount_setattr", src, err)
	}
	return step("move_mount", dst, unix.MoveMount(fd, "", unix.AT_FDCWD, p, unix.MOVE_MOUNT_F_EMPTY_PATH|unix.MOVE_MOUNT_T_SYMLINKS))
}

func bindTreeLegacy(src, p, dst string, flags bindFlags) error {
	if err := unix.Mount(src, p, "", unix.MS_BIND|unix.MS_REC, ""); err != nil {
		return step("mount bind", dst, err)
	}
	ms := uintptr(unix.MS_BIND | unix.MS_REMOUNT)
	for attr, flag := range map[bindFlags]uintptr{unix.MOUNT_ATTR_RDONLY: unix.MS_RDONLY, unix.MOUNT_ATTR_NOSUID: unix.MS_NOSUID, unix.MOUNT_ATTR_NODEV: unix.MS_NODEV} {
		if flags&attr != 0 {
			ms |= flag
		}
	}
	return step("remount", dst, unix.Mount("", p, "", ms, ""))
}

// devNodes are the character devices a sandbox gets from the host: the
// ones every program expects and none of which reaches hardware.
var devNodes = []string{"null", "zero", "full", "random", "urandom", "tty"}

var devLinks = [][2]string{
	{"pts/ptmx", "ptmx"},
	{"/proc/self/fd", "fd"},
	{"/proc/self/fd/0", "stdin"},
	{"/proc/self/fd/1", "stdout"},
	{"/proc/self/fd/2", "stderr"},
}

func (o MountDev) apply(st *state) error {
	p, done, err := st.mountpoint(o.Target, dirKind)
	if err != nil {
		return err
	}
	err = mountTmpfs(p, o.Target, 0o755)
	done()
	if err != nil {
		return err
	}
	// Everything below is made inside the fresh tmpfs, found again through
	// the same in-root resolution.
	for _, name := range devNodes {
		if err := bindTree(st, "/dev/"+name, o.Target+"/"+name, bindDevice); err != nil {
			return err
		}
	}
	// A new devpts instance: the session's ptys are its own, and none of
	// the host's terminals can be opened from inside.
	if err := st.mountAt(o.Target+"/pts", func(p string) error {
		return unix.Mount("devpts", p, "devpts", unix.MS_NOSUID|unix.MS_NOEXEC, "newinstance,ptmxmode=0666,mode=0620")
	}); err != nil {
		return step("mount devpts", o.Target+"/pts", err)
	}
	if st.keeper != nil {
		if err := st.keeper.holdDevpts(st, o.Target+"/pts"); err != nil {
			return err
		}
	}
	if err := st.mountAt(o.Target+"/shm", func(p string) error { return mountTmpfs(p, o.Target+"/shm", 0o1777) }); err != nil {
		return err
	}
	dev, done, err := st.mountpoint(o.Target, dirKind)
	if err != nil {
		return err
	}
	defer done()
	for _, l := range devLinks {
		if err := os.Symlink(l[0], filepath.Join(dev, l[1])); err != nil {
			return step("symlink", filepath.Join(o.Target, l[1]), err)
		}
	}
	return nil
}

// mountAt resolves a directory mount point and mounts on it with fn.
func (st *state) mountAt(target string, fn func(p string) error) error {
	p, done, err := st.mountpoint(target, dirKind)
	if err != nil {
		return err
	}
	defer done()
	return fn(p)
}

func (o PivotRoot) apply(st *state) error {
	if st.keeper != nil && st.keeper.spawner != nil {
		if err := st.keeper.awaitSpawner(); err != nil {
			return err
		}
	}
	if err := unix.Mount(o.NewRoot, o.NewRoot, "", unix.MS_BIND|unix.MS_REC, ""); err != nil {
		return &stepError{step: "bind new_root", path: o.NewRoot, status: StatusBindNewRoot, err: err}
	}
	// The old root is stacked on the new one and detached from there,
	// pivot_root(".", ".") as runc does: no directory for it inside the
	// session's root, which would have to be made in the upper dir and
	// removed again, a removal that waited on the detach (up to 3 ms of
	// every start).
	oldRoot, err := unix.Open("/", unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return &stepError{step: "open", path: "/", status: StatusPivotRoot, err: err}
	}
	defer unix.Close(oldRoot)
	newRoot, err := unix.Open(o.NewRoot, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
	if err != nil {
		return &stepError{step: "open", path: o.NewRoot, status: StatusPivotRoot, err: err}
	}
	defer unix.Close(newRoot)
	if err := unix.Fchdir(newRoot); err != nil {
		return &stepError{step: "chdir", path: o.NewRoot, status: StatusPivotRoot, err: err}
	}
	if err := unix.PivotRoot(".", "."); err != nil {
		return &stepError{step: "pivot_root", path: o.NewRoot, status: StatusPivotRoot, err: err}
	}
	// In the old root, now on top of the new one at /, to detach it.
	if err := unix.Fchdir(oldRoot); err != nil {
		return &stepError{step: "chdir", path: "/", status: StatusDetachOldRoot, err: err}
	}
	if err := unix.Unmount(".", unix.MNT_DETACH); err != nil {
		return &stepError{step: "umount2", path: "/", status: StatusDetachOldRoot, err: err}
	}
	if err := unix.Chdir("/"); err != nil {
		return &stepError{step: "chdir", path: "/", status: StatusChdirRoot, err: err}
	}
	return nil
}
