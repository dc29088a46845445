package sandbox

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"

	"golang.org/x/sys/unix"
)

// state is what ops act on inside the stage. During the Root phase attr is
// nil and ops act on the stage itself; during the Process phase ops that
// only make sense in the target (a new session, a parent-death signal
// aimed at its real parent) configure attr, which the final fork applies.
// Every other process op acts on the stage's locked thread, whose
// attributes the fork copies to the target.
type state struct {
	attr *syscall.SysProcAttr
	// root is the session root being built (the overlay's target) once it
	// is mounted; mount points below it are resolved inside it.
	root string
	// parentGone reports whether incarnate, the stage's parent, has died.
	parentGone func() bool
	// idmap, when set, is the session's user namespace, through which
	// its layers are mounted (MountOverlay.IDMap).
	idmap *idmap
	// keeper is the keeper building this root, for StartSpawner.
	keeper *keeper
	// process is the confinement the keeper imposes.
	process []Op
	// notes go to the user once the root is built (report.Notes).
	notes []string
}

// idmap is a user namespace to idmap mounts with, and the host ids its
// root maps to.
type idmap struct {
	nsfd     int
	uid, gid int
}

// applier is implemented by every op, in this file and the mount files.
type applier interface {
	apply(st *state) error
}

// stepError is a failure of one syscall of an op; ops made of several
// steps (PivotRoot) give each step its own fallback status.
type stepError struct {
	step   string
	path   string
	status int
	err    error
}

func (e *stepError) Error() string { return e.step + " " + e.path + ": " + e.err.Error() }

func step(name, path string, err error) error {
	if err == nil {
		return nil
	}
	return &stepError{step: name, path: path, err: err}
}

// toOpError turns whatever an op returned into the record sent to the
// parent, keeping the syscall, the path and the errno.
func toOpError(op Op, err error) *OpError {
	rec := &OpError{Op: op.Kind(), Step: op.Kind(), Status: op.Status()}
	var se *stepError
	if errors.As(err, &se) {
		rec.Step, rec.Path = se.step, se.path
		if se.status != 0 {
			rec.Status = se.status
		}
		err = se.err
	}
	var pe *os.PathError
	if errors.As(err, &pe) {
		rec.Step, rec.Path, err = pe.Op, pe.Path, pe.Err
	}
	var errno syscall.Errno
	if errors.As(err, &errno) {
		rec.Errno = errno
	} else if err != nil {
		rec.Msg = err.Error()
	}
	return rec
}

func (o MakeRslave) apply(*state) error {
	flag := uintptr(unix.MS_SLAVE)
	if o.Private {
		flag = unix.MS_PRIVATE
	}
	return step("mount", "/", unix.Mount("", "/", "", flag|unix.MS_REC, ""))
}

// procReadOnly are the parts of /proc that reach past the session's
// namespaces (kernel tunables, the SysRq trigger, interrupt routing): a
// root-owned file there is the host's, whatever namespace writes it.
var procReadOnly = []string{"sys", "sysrq-trigger", "irq", "bus", "fs"}

func (o MountProc) apply(st *state) error {
	p, done, err := st.mountpoint(o.Target, dirKind)
	if err != nil {
		return err
	}
	if err := unix.Mount("proc", p, "proc", unix.MS_NOSUID|unix.MS_NODEV|unix.MS_NOEXEC, ""); err != nil {
		done()
		return step("mount proc", o.Target, err)
	}
	done()
	for _, name := range procReadOnly {
		// Found again from the root: p still names the directory under
		// the new proc mount, not the mount itself.
		sub, found, err := st.existing(o.Target + "/" + name)
		if err != nil {
			return err
		}
		if found == nil {
			continue // not in this kernel
		}
		err = bindAt(sub, sub, o.Target+"/"+name, bindReadOnly)
		found()
		if err != nil {
			return err
		}
	}
	return nil
}

func (o MountSysfs) apply(st *state) error {
	p, done, err := st.mountpoint(o.Target, dirKind)
	if err != nil {
		return err
	}
	defer done()
	const flags = unix.MS_RDONLY | unix.MS_NOSUID | unix.MS_NODEV | unix.MS_NOEXEC
	err = unix.Mount("sysfs", p, "sysfs", flags, "")
	if err == unix.EPERM {
		// A user namespace that shares the host's network namespace may
		// not mount a sysfs of its own (it would expose that network
		// namespace's devices); bubblewrap binds the host's instead.
		return bindAt("/sys", p, o.Target, bindReadOnly)
	}
	return step("mount sysfs", o.Target, err)
}

func (o MountTmpfs) apply(st *state) error {
	if o.Hide {
		return o.hide(st)
	}
	p, done, err := st.mountpoint(o.Target, dirKind)
	if err != nil {
		return err
	}
	defer done()
	return mountTmpfs(p, o.Target, o.Mode)
}

func (o MountTmpfs) hide(st *state) error {
	rootfd, err := unix.Open(st.root, unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return step("open", st.root, err)
	}
	defer unix.Close(rootfd)
	rel := strings.TrimPrefix(strings.TrimPrefix(o.Target, st.root), "/")
	fd, err := unix.Openat2(rootfd, rel, &unix.OpenHow{
		Flags:   unix.O_PATH | unix.O_DIRECTORY | unix.O_CLOEXEC,
		Resolve: unix.RESOLVE_IN_ROOT | unix.RESOLVE_NO_SYMLINKS | unix.RESOLVE_NO_MAGICLINKS,
	})
	switch {
	case err == unix.ELOOP || err == unix.ENOENT || err == unix.ENOTDIR:
		return nil // not reached through this path: nothing to cover
	case err != nil:
		return step("openat2", o.Target, err)
	}
	defer unix.Close(fd)
	return mountTmpfs("/proc/self/fd/"+strconv.Itoa(fd), o.Target, o.Mode)
}

// mountTmpfs mounts a tmpfs on p; target names it in errors.
func mountTmpfs(p, target string, mode uint32) error {
	data := "mode=" + octal(mode)
	return step("mount tmpfs", target, unix.Mount("tmpfs", p, "tmpfs", unix.MS_NOSUID|unix.MS_NODEV, data))
}

func octal(mode uint32) string { return "0" + strconv.FormatUint(uint64(mode), 8) }

func (o Bind) apply(st *state) error {
	if _, err := os.Stat(o.Src); err != nil && o.Optional && errors.Is(err, os.ErrNotExist) {
		return nil
	}
	flags := bindReadOnly
	if o.Writable {
		flags = bindData
	}
	src := o.Src
	if o.Resolved {
		fd, err := unix.Openat2(unix.AT_FDCWD, o.Src, &unix.OpenHow{Flags: unix.O_PATH | unix.O_CLOEXEC, Resolve: unix.RESOLVE_NO_SYMLINKS})
		if err == unix.ELOOP {
			return step("open", o.Src, errors.New("the bind's source passes through a symlink now, and had none when the session was made: "+
				"a session can put one there through another bind; remove it, or make the session again"))
		}
		if err != nil && err != unix.ENOSYS {
			return step("open", o.Src, err)
		}
		if err == nil {
			defer unix.Close(fd)
			src = "/proc/self/fd/" + strconv.Itoa(fd)
		}
	}
	return bindTree(st, src, o.Dst, flags)
}

func (o Hostname) apply(*state) error {
	return step("sethostname", o.Name, unix.Sethostname([]byte(o.Name)))
}

func (CloseFds) apply(*state) error {
	// Marked close-on-exec rather than closed: the Go runtime owns some
	// of them (its epoll and wake-up pipe) and must keep them.
	return step("close_range", "", unix.CloseRange(3, ^uint(0), unix.CLOSE_RANGE_CLOEXEC))
}

func (NoNewPrivs) apply(*state) error {
	// A per-thread flag: the stage runs on one locked thread and forks
	// the target from it, so the target inherits it.
	return step("prctl(PR_SET_NO_NEW_PRIVS)", "", unix.Prctl(unix.PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0))
}

func (o Dumpable) apply(*state) error {
	v := uintptr(0)
	if o.On {
		v = 1
	}
	return step("prctl(PR_SET_DUMPABLE)", "", unix.Prctl(unix.PR_SET_DUMPABLE, v, 0, 0, 0))
}

func (o ParentDeathSig) apply(st *state) error {
	if st.attr != nil {
		// Go's fork sets the signal in the child and then compares
		// getppid() with the pid it recorded, killing the child if the
		// stage died in between.
		st.attr.Pdeathsig = o.Signal
		return nil
	}
	if err := unix.Prctl(unix.PR_SET_PDEATHSIG, uintptr(o.Signal), 0, 0, 0); err != nil {
		return step("prctl(PR_SET_PDEATHSIG)", "", err)
	}
	// The re-check: a parent that died before prctl would never send the
	// signal. In a new PID namespace getppid() is 0 whether or not the
	// parent lives, so the stage asks its error pipe instead, whose only
	// reader is the parent.
	if st.parentGone != nil && st.parentGone() {
		return &stepError{step: "getppid", err: errors.New("parent died before the stage was set up")}
	}
	return nil
}

func (o NewSession) apply(st *state) error {
	if st.attr == nil {
		return step("setsid", "", errors.New("new_session belongs to the process ops"))
	}
	st.attr.Setsid = true
	if o.Ctty {
		st.attr.Setctty = true
		st.attr.Ctty = 0
	}
	return nil
}

func (o Chdir) apply(*state) error {
	err := unix.Chdir(o.Path)
	if err == unix.ENOENT && o.OrElse != "" {
		if err = unix.Chdir(o.OrElse); err == unix.ENOENT {
			err = unix.Chdir("/") // a base without even that
		}
		return step("chdir", o.OrElse, err)
	}
	return step("chdir", o.Path, err)
}

func (o Umask) apply(*state) error {
	unix.Umask(int(o.Mode))
	return nil
}

// mkdirMountpoint makes sure a mount point outside the session's root
// exists (inside it, st.mountpoint does this safely).
func mkdirMountpoint(p string) error {
	if fi, err := os.Stat(p); err == nil && fi.IsDir() {
		return nil
	}
	return step("mkdir", p, os.MkdirAll(p, 0o755))
}

// mkfileMountpoint does the same for a bind of a single file.
func mkfileMountpoint(p string) error {
	if _, err := os.Stat(p); err == nil {
		return nil
	}
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		return step("mkdir", filepath.Dir(p), err)
	}
	f, err := os.OpenFile(p, os.O_CREATE|os.O_WRONLY, 0o644)
	if err != nil {
		return step("create", p, err)
	}
	return f.Close()
}

func (o UserNamespace) apply(st *state) error {
	if st.attr == nil {
		return step("clone", "", errors.New("user_namespace belongs to the process ops"))
	}
	st.attr.Cloneflags |= unix.CLONE_NEWUSER
	if o.Count > 0 {
		st.attr.UidMappings = []syscall.SysProcIDMap{{ContainerID: 0, HostID: o.UID, Size: o.Count}}
		st.attr.GidMappings = []syscall.SysProcIDMap{{ContainerID: 0, HostID: o.GID, Size: o.Count}}
		st.attr.GidMappingsEnableSetgroups = true
		// Until it takes id 0 inside, the child is the host's root, which
		// the namespace does not map: it would be nobody.
		st.attr.Credential = &syscall.Credential{Uid: 0, Gid: 0}
		return nil
	}
	uids, err := identityMap("/proc/self/uid_map")
	if err != nil {
		return err
	}
	gids, err := identityMap("/proc/self/gid_map")
	if err != nil {
		return err
	}
	setgroups, _ := os.ReadFile("/proc/self/setgroups")
	st.attr.UidMappings, st.attr.GidMappings = uids, gids
	// A stage whose own namespace denies setgroups cannot allow it below.
	st.attr.GidMappingsEnableSetgroups = strings.TrimSpace(string(setgroups)) == "allow"
	return nil
}

// identityMap maps every id range of the current user namespace to
// itself, as a child user namespace's map.
func identityMap(file string) ([]syscall.SysProcIDMap, error) {
	b, err := os.ReadFile(file)
	if err != nil {
		return nil, step("read", file, err)
	}
	var m []syscall.SysProcIDMap
	for _, line := range strings.Split(strings.TrimSpace(string(b)), "\n") {
		f := strings.Fields(line)
		if len(f) != 3 {
			continue
		}
		inside, err1 := strconv.Atoi(f[0])
		count, err2 := strconv.Atoi(f[2])
		if err1 != nil || err2 != nil {
			return nil, step("parse", file, fmt.Errorf("bad line %q", line))
		}
		m = append(m, syscall.SysProcIDMap{ContainerID: inside, HostID: inside, Size: count})
	}
	return m, nil
}

func (LoopbackUp) apply(*state) error {
	fd, err := unix.Socket(unix.AF_INET, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return step("socket", "lo", err)
	}
	defer unix.Close(fd)
	ifr, err := unix.NewIfreq("lo")
	if err != nil {
		return step("ifreq", "lo", err)
	}
	if err := unix.IoctlIfreq(fd, unix.SIOCGIFFLAGS, ifr); err != nil {
		return step("SIOCGIFFLAGS", "lo", err)
	}
	ifr.SetUint16(ifr.Uint16() | unix.IFF_UP)
	return step("SIOCSIFFLAGS", "lo", unix.IoctlIfreq(fd, unix.SIOCSIFFLAGS, ifr))
}

func (StartSpawner) apply(st *state) error {
	if st.keeper == nil {
		return step("start spawner", "", errors.New("only a keeper has a spawner"))
	}
	return st.keeper.startSpawner(st)
}

func (o Cgroup) apply(st *state) error {
	if st.keeper == nil {
		return step("cgroup", o.ID, errors.New("only a keeper has a cgroup"))
	}
	cg, err := NewSessionCgroup(o.ID, CgroupLimits{Pids: o.Pids, Memory: o.Memory})
	if errors.Is(err, ErrNoCgroupDelegation) && o.Optional {
		return nil
	}
	if err != nil {
		return err
	}
	// Nobody enters yet: what the keeper starts is born inside.
	st.keeper.cgroup = cg
	return nil
}
