package sandbox

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// An ordinary user's session of the host base cannot use the kernel's
// overlay for "/": inside a user namespace it refuses a lower with locked
// submounts ("failed to clone lowerpath"), and it cannot copy up a file
// whose owner the namespace does not map (EOVERFLOW), which is every file
// of the host's root. fuse-overlayfs can, as a daemon that reads the host
// as the user and answers for the session's view.
//
// The keeper mounts the FUSE file system itself, with a /dev/fuse it
// opens, and hands the daemon that descriptor (libfuse's /dev/fd/N): the
// keeper, not the daemon, chooses the mount's options. The daemon runs in
// a mount namespace of its own, so the keeper's pivot never makes the
// FUSE mount its root (a single-threaded daemon that looked a path up
// through its own mount would wait on itself). Its lower dir is a
// detached, recursive copy of the host's mount tree taken before the
// FUSE mount exists: submounts (a /home partition, binds) are walked
// into like any directory, and the FUSE mount itself is never below it.

// fuseReadyWait bounds how long the keeper waits for the daemon's first
// answer.
const fuseReadyWait = 20 * time.Second

func (o MountFuseOverlay) apply(st *state) error {
	if err := mkdirMountpoint(o.Target); err != nil {
		return err
	}
	// Every fd the daemon gets, from its fd 3 on: the mounted /dev/fuse,
	// then the upper, work and lower dirs. Paths through /proc/self/fd
	// need no escaping in its option string.
	fds := []int{-1}
	defer func() {
		for _, fd := range fds[1:] {
			unix.Close(fd)
		}
	}()
	for _, d := range []string{o.Upper, o.Work} {
		fd, err := unix.Open(d, unix.O_PATH|unix.O_DIRECTORY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
		if err != nil {
			return step("open", d, err)
		}
		fds = append(fds, fd)
	}
	lowers := make([]string, len(o.Lowers))
	for i, l := range o.Lowers {
		fd, err := unix.OpenTree(unix.AT_FDCWD, l, unix.OPEN_TREE_CLONE|unix.OPEN_TREE_CLOEXEC|unix.AT_RECURSIVE)
		if err != nil {
			return step("open_tree", l, err)
		}
		lowers[i] = "/proc/self/fd/" + strconv.Itoa(3+len(fds))
		fds = append(fds, fd)
	}
	dev, err := unix.Open("/dev/fuse", unix.O_RDWR|unix.O_CLOEXEC, 0)
	if err != nil {
		return step("open", "/dev/fuse", err)
	}
	defer func() {
		if dev >= 0 {
			unix.Close(dev)
		}
	}()
	// nosuid and nodev, as every overlay incarnate mounts; allow_other so
	// that the session's other users (apt's _apt) reach it, which in a
	// user namespace reaches no one outside it.
	opts := fmt.Sprintf("fd=%d,rootmode=40000,user_id=0,group_id=0,allow_other,default_permissions", dev)
	if err := unix.Mount("incarnate", o.Target, "fuse.fuse-overlayfs", unix.MS_NOSUID|unix.MS_NODEV, opts); err != nil {
		return step("mount fuse", o.Target, err)
	}
	idOpts, err := fuseIDOptions()
	if o.Shift > 0 {
		idOpts = fmt.Sprintf("uidmapping=0:%d:65536,gidmapping=0:%d:65536", o.Shift, o.Shift)
	}
	if err != nil {
		return err
	}
	logR, logW, err := os.Pipe()
	if err != nil {
		return step("pipe", "", err)
	}
	defer logR.Close()
	fds[0] = dev
	files := []uintptr{uintptr(nullFd()), uintptr(nullFd()), logW.Fd()}
	for _, fd := range fds {
		files = append(files, uintptr(fd))
	}
	attr := &syscall.SysProcAttr{Unshareflags: unix.CLONE_NEWNS, Pdeathsig: unix.SIGKILL, Setsid: true}
	fork := syscall.ForkExec
	if st.keeper != nil && st.keeper.cgroup != nil {
		fork = st.keeper.cgroup.ForkExec // the session's, like everything the keeper starts
	}
	pid, err := fork(o.Program, []string{
		"fuse-overlayfs", "-f", "-o",
		"lowerdir=" + strings.Join(lowers, ":") + ",upperdir=/proc/self/fd/4,workdir=/proc/self/fd/5," +
			idOpts + ",noacl",
		"/dev/fd/3",
	}, &syscall.ProcAttr{
		Dir: "/", Env: []string{}, Files: files, Sys: attr,
	})
	logW.Close()
	if err != nil {
		_ = unix.Unmount(o.Target, unix.MNT_DETACH)
		return step("start", o.Program, err)
	}
	// Only the daemon holds the device now: should it die, the kernel
	// ends the connection, and every access fails instead of waiting.
	unix.Close(dev)
	dev, fds[0] = -1, -1
	if err := awaitFuse(o.Target, pid, logR); err != nil {
		_ = unix.Kill(pid, unix.SIGKILL)
		_ = unix.Unmount(o.Target, unix.MNT_DETACH)
		return err
	}
	st.root = o.Target
	return nil
}

// nullFd is an fd of /dev/null for the daemon's standard streams; it is
// left open in the keeper, which needs it for every such daemon.
var nullFd = sync.OnceValue(func() int {
	fd, err := unix.Open("/dev/null", unix.O_RDWR|unix.O_CLOEXEC, 0)
	if err != nil {
		return 0
	}
	return fd
})

// awaitFuse waits for the daemon's answer to a first request on target,
// and turns its death or silence into an error with what it printed.
func awaitFuse(target string, pid int, log *os.File) error {
	done := make(chan error, 1)
	go func() {
		var st unix.Statfs_t
		done <- unix.Statfs(target, &st)
	}()
	var err error
	select {
	case err = <-done:
	case <-time.After(fuseReadyWait):
		err = fmt.Errorf("no answer in %v", fuseReadyWait)
	}
	if err == nil {
		// Its stderr is no longer read: what it prints from here on
		// goes nowhere, and it never waits on a full pipe.
		go discard(log)
		return nil
	}
	_ = unix.Kill(pid, unix.SIGKILL)
	_ = log.SetReadDeadline(time.Now().Add(time.Second))
	var b bytes.Buffer
	_, _ = b.ReadFrom(log)
	msg := strings.TrimSpace(b.String())
	if msg == "" {
		msg = err.Error()
	}
	return step("fuse-overlayfs", target, errors.New(msg))
}

func discard(f *os.File) {
	buf := make([]byte, 4096)
	for {
		if _, err := f.Read(buf); err != nil {
			return
		}
	}
}

// fuseIDOptions are fuse-overlayfs's options for the owners it shows.
// The daemon sees every host id its user namespace does not map (root's
// files among them) as the overflow id, 65534, and so does what it
// copies up: its chown to the overflow id works only where the
// namespace maps that id, which sub-ids give. Then the mapping shows the
// overflow id as 0 and every other id as itself, so the host's files are
// root's inside, as on the host, while what a user inside makes keeps its
// owner. Without, only the user is mapped, there are no other owners to
// keep, and everything is root's (squash_to_root, which also lets the
// copy-up keep the daemon's own id).
func fuseIDOptions() (string, error) {
	uids, err := mappedIDs("/proc/self/uid_map")
	if err != nil {
		return "", err
	}
	gids, err := mappedIDs("/proc/self/gid_map")
	if err != nil {
		return "", err
	}
	const overflow = 65534
	if uids <= overflow || gids <= overflow {
		return "squash_to_root", nil
	}
	return "uidmapping=" + overflowAsRoot(uids) + ",gidmapping=" + overflowAsRoot(gids), nil
}

// overflowAsRoot is the mapping for n ids from 0. fuse-overlayfs keeps
// the entries in reverse order and takes the first that fits, both ways:
// listed last, the identity comes first, so a chown to 0 stays 0.
func overflowAsRoot(n int) string {
	const overflow = 65534
	m := fmt.Sprintf("%d:0:1:0:0:%d", overflow, overflow)
	if n > overflow+1 {
		m = fmt.Sprintf("%d:%d:%d:", overflow+1, overflow+1, n-overflow-1) + m
	}
	return m
}

// mappedIDs counts the ids the user namespace map at path holds.
func mappedIDs(path string) (int, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return 0, step("read", path, err)
	}
	n := 0
	for _, line := range strings.Split(strings.TrimSpace(string(b)), "\n") {
		f := strings.Fields(line)
		if len(f) != 3 {
			continue
		}
		size, err := strconv.Atoi(f[2])
		if err != nil {
			return 0, step("read", path, err)
		}
		n += size
	}
	return n, nil
}

// FuseOwner is the owner (or group) a fuse-overlayfs session shows for
// a file that this process sees owned by id, by the rule fuseIDOptions
// gave the daemon.
func FuseOwner(id uint32) uint32 {
	if !FuseShowsOwners() || id == 65534 {
		return 0
	}
	return id
}

// FuseShowsOwners reports whether fuse-overlayfs sessions keep owners
// (the sessions' sub-id namespace maps the overflow id) as this process
// sees them: one in that namespace sees ids as the daemon does; one
// outside, as the host does, where only the user's ids would be mapped.
var FuseShowsOwners = sync.OnceValue(func() bool {
	n, err := mappedIDs("/proc/self/uid_map")
	return err == nil && n > 65534 && currentNS().child
})
