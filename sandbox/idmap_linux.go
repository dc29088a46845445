package sandbox

import (
	"errors"
	"fmt"
	"os"
	"strings"
	"syscall"

	"golang.org/x/sys/unix"
)

// A root session's processes are an unprivileged id range on the host
// (UserNamespace with Count), yet its files must look as they are on
// disk: root's files root's, with an upper dir that keeps the ids the
// session sees. Every layer is therefore handed to overlay as an
// idmapped mount of the session's user namespace (Linux ≥ 5.19 takes
// idmapped layers), detached, never attached anywhere a path could reach.
//
// Overlay does its upper-dir work (the work dir, copy-ups, whiteouts)
// with the credentials of whoever mounted it, and through an idmapped
// upper those must be ids the map knows: the host's root is not one
// (EOVERFLOW, and the overlay falls back to read-only). So the mount is
// made with the fsuid and fsgid of the session's root, on this thread
// only, with the capabilities that a change of fsuid drops raised again.
// The keeper keeps them from then on: what it makes in the root (mount
// points, the tmpfs of /dev, a pty) is the session root's, as it must be.

// layerFds are open directories (or detached mounts) to use for an
// overlay's layers, by their paths in the op.
type layerFds map[string]int

func mountIdmappedOverlay(o MountOverlay, m *idmap) error {
	if m == nil {
		return step("mount overlay", o.Target, errors.New("no user namespace to idmap the layers with"))
	}
	fds := layerFds{}
	defer func() {
		for _, fd := range fds {
			unix.Close(fd)
		}
	}()
	for _, l := range o.Lowers {
		fd, err := idmappedTree(l, m.nsfd)
		if err != nil {
			return err
		}
		fds[l] = fd
	}
	// Upper and work must be on one mount: an idmapped mount of the dir
	// that holds them both, and each opened beneath it.
	home := o.home()
	parent, err := idmappedTree(home, m.nsfd)
	if err != nil {
		return err
	}
	defer unix.Close(parent)
	for _, d := range []string{o.Upper, o.Work} {
		fd, err := unix.Openat2(parent, strings.TrimPrefix(d, home+"/"), &unix.OpenHow{
			Flags: unix.O_PATH | unix.O_DIRECTORY | unix.O_CLOEXEC, Resolve: unix.RESOLVE_BENEATH | unix.RESOLVE_NO_SYMLINKS})
		if err != nil {
			return step("open", d, err)
		}
		fds[d] = fd
	}
	if err := actAs(m.uid, m.gid); err != nil {
		return step("setfsuid", o.Target, err)
	}
	return mountOverlayFds(o, fds)
}

// idmappedTree returns a detached copy of the mount at dir, seen through
// the user namespace nsfd.
func idmappedTree(dir string, nsfd int) (int, error) {
	fd, err := unix.OpenTree(unix.AT_FDCWD, dir, unix.OPEN_TREE_CLONE|unix.OPEN_TREE_CLOEXEC)
	if err != nil {
		return -1, step("open_tree", dir, err)
	}
	attr := &unix.MountAttr{Attr_set: unix.MOUNT_ATTR_IDMAP, Userns_fd: uint64(nsfd)}
	if err := unix.MountSetattr(fd, "", unix.AT_EMPTY_PATH, attr); err != nil {
		unix.Close(fd)
		if err == unix.EINVAL || err == unix.EPERM {
			return -1, step("mount_setattr idmap", dir, fmt.Errorf("%w: %w", ErrNoIdmap, err))
		}
		return -1, step("mount_setattr idmap", dir, err)
	}
	return fd, nil
}

// ErrNoIdmap: the file system (or the kernel) cannot idmap a mount, so a
// root session cannot be mounted with its own id range. incarnate never
// falls back to the identity map.
var ErrNoIdmap = errors.New("idmapped mounts are not supported here")

// actAs switches this thread's fsuid and fsgid to uid and gid, keeping
// every capability effective.
func actAs(uid, gid int) error {
	unix.Setfsuid(uid)
	unix.Setfsgid(gid)
	return raiseCaps()
}

// raiseCaps makes every permitted capability effective again.
func raiseCaps() error {
	hdr := unix.CapUserHeader{Version: unix.LINUX_CAPABILITY_VERSION_3}
	var data [2]unix.CapUserData
	if err := unix.Capget(&hdr, &data[0]); err != nil {
		return err
	}
	data[0].Effective, data[1].Effective = data[0].Permitted, data[1].Permitted
	return unix.Capset(&hdr, &data[0])
}

// CheckIdmap tries what a root session's start does: an idmapped mount
// of dir (the store's sessions or a layer) through a user namespace with
// a session-like map. nil means root's sessions can run here.
func CheckIdmap(dir string) error {
	holder, nsfd, err := rangeNamespace(1 << 16)
	if err != nil {
		return err
	}
	defer func() {
		unix.Close(nsfd)
		_ = holder.Kill()
		_, _ = holder.Wait()
	}()
	fd, err := idmappedTree(dir, nsfd)
	if err != nil {
		return err
	}
	return unix.Close(fd)
}

// rangeNamespace starts a process that waits in a new user namespace
// mapping count ids to the top of the session area, and returns it with
// the namespace's fd.
func rangeNamespace(count int) (*os.Process, int, error) {
	r, w, err := os.Pipe()
	if err != nil {
		return nil, -1, err
	}
	defer r.Close()
	defer w.Close()
	m := []syscall.SysProcIDMap{{ContainerID: 0, HostID: 1879048192 - count, Size: count}}
	p, err := os.StartProcess("/bin/cat", []string{"cat"}, &os.ProcAttr{
		Files: []*os.File{r, nil, nil},
		Sys:   &syscall.SysProcAttr{Cloneflags: unix.CLONE_NEWUSER, UidMappings: m, GidMappings: m},
	})
	if err != nil {
		return nil, -1, fmt.Errorf("a user namespace with an id range: %w", err)
	}
	nsfd, err := unix.Open(fmt.Sprintf("/proc/%d/ns/user", p.Pid), unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		_ = p.Kill()
		_, _ = p.Wait()
		return nil, -1, err
	}
	return p, nsfd, nil
}
