package sandbox

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"os"
	"path"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// A session's cgroup is a child, named incarnate-<id>, of the cgroup its
// creator runs in, so that killing it reaches the session and nothing else,
// and its limits (pids.max by default, memory if asked) hold against
// whatever runs inside, a fork bomb included. The keeper creates it before
// pivot_root, enters it, and forks the session's processes into cgroup
// namespaces rooted there. Everything after creation goes through
// directory fds: after pivot_root /sys/fs/cgroup is out of reach by path.
//
// Which hierarchies, by the host's cgroup layout:
//
//	pure v2 (/sys/fs/cgroup is cgroup2)
//	    <caller's cgroup>/incarnate-<id>, with pids (and memory) enabled
//	    in the caller's cgroup.subtree_control. If the caller's cgroup
//	    holds processes, the kernel refuses that (the no-internal-processes
//	    rule, EBUSY); see v2Base for the way out.
//	v1 or hybrid (a v1 pids hierarchy is mounted)
//	    <caller's pids cgroup>/incarnate-<id> and the same under memory,
//	    each below the caller's cgroup in that hierarchy; and, on a hybrid
//	    host, <caller's cgroup2>/incarnate-<id> in the controller-less
//	    unified hierarchy, which alone has cgroup.kill. v1 is never
//	    delegated to ordinary users, so this is root's.
//
// A leftover incarnate-<id> without processes (a crashed keeper's) is
// removed and made again; one with processes belongs to a live session and
// is refused.

const (
	cgroupPrefix = "incarnate-"
	// cgroupLeaf is where a delegated v2 cgroup's own processes are moved
	// so that controllers can be enabled below it. Its '.' keeps it apart
	// from every incarnate-<id>.
	cgroupLeaf = "incarnate.leaf"
	// cgroupShared is root's parent of sessions on pure v2 when its own
	// cgroup cannot have controlled children, under the root cgroup.
	cgroupShared = "incarnate"
)

// Hierarchy kinds.
const (
	cgV2      = "v2"      // the unified hierarchy with its controllers
	cgUnified = "unified" // a hybrid host's controller-less cgroup2
	cgPids    = "pids"    // v1
	cgMemory  = "memory"  // v1
)

// SessionCgroup is a session's cgroup in every hierarchy it needs.
type SessionCgroup struct {
	id    string
	dirs  []*cgroupDir
	pids  int64 // pids.max as set
	mem   int64 // the memory limit as set, 0 for none
	moved bool  // a v2 leaf arrangement moved the caller's processes
	// thread is the caller's thread BornInside put in the v1 cgroups.
	thread int
}

// cgroupDir is the session's cgroup in one hierarchy.
type cgroupDir struct {
	kind   string
	rel    string   // its path in the hierarchy, as /proc/self/cgroup names it
	shown  string   // its path on the host, for messages only
	dir    *os.File // the session cgroup
	parent *os.File // where it is made and removed
	origin *os.File // where the caller came from, and returns to
	from   string   // origin's path on the host, for messages only
}

// hierarchy is one mounted cgroup hierarchy and the caller's place in it.
type hierarchy struct {
	kind  string
	mount string // mount point
	root  string // the mount's root within the hierarchy
	path  string // the caller's cgroup, from /proc/self/cgroup
}

// dir is the caller's cgroup directory.
func (h hierarchy) dir() string {
	return path.Join(h.mount, strings.TrimPrefix(h.path, h.root))
}

// NewSessionCgroup makes the cgroup of session id below the caller's and
// sets its limits. It does not move anyone into it: see Enter.
func NewSessionCgroup(id string, lim CgroupLimits) (*SessionCgroup, error) {
	if err := validCgroupID(id); err != nil {
		return nil, err
	}
	if lim.Pids < 0 || lim.Memory < 0 {
		return nil, fmt.Errorf("cgroup limits: pids %d, memory %d: must not be negative", lim.Pids, lim.Memory)
	}
	if lim.Pids == 0 {
		lim.Pids = DefaultPidsMax
	}
	hs, err := cgroupHierarchies(lim.Memory > 0)
	if err != nil {
		return nil, err
	}
	c := &SessionCgroup{id: id, pids: lim.Pids, mem: lim.Memory}
	for _, h := range hs {
		d, err := c.make(h)
		if err != nil {
			c.Close()
			return nil, err
		}
		c.dirs = append(c.dirs, d)
		if err := c.limit(d); err != nil {
			c.Close()
			return nil, err
		}
	}
	return c, nil
}

// validCgroupID keeps id one harmless path component.
func validCgroupID(id string) error {
	if id == "" || len(id) > 64 {
		return fmt.Errorf("invalid cgroup id %q: want 1 to 64 characters", id)
	}
	for _, r := range id {
		if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '-' || r == '_' || r == '.') {
			return fmt.Errorf("invalid cgroup id %q: want only letters, digits, '-', '_' and '.'", id)
		}
	}
	return nil
}

// cgroupHierarchies finds the hierarchies a session needs and checks the
// caller may create cgroups in each, without changing anything.
func cgroupHierarchies(needMemory bool) ([]hierarchy, error) {
	mounts, err := cgroupMounts()
	if err != nil {
		return nil, err
	}
	var hs []hierarchy
	if h, ok := mounts[cgPids]; ok {
		if u, ok := mounts[cgV2]; ok {
			u.kind = cgUnified
			hs = append(hs, u)
		}
		hs = append(hs, h)
		if m, ok := mounts[cgMemory]; ok {
			hs = append(hs, m)
		} else if needMemory {
			return nil, errors.New("cgroup: a memory limit needs the memory controller, and no v1 memory hierarchy is mounted")
		}
	} else if h, ok := mounts[cgV2]; ok {
		hs = append(hs, h)
	} else {
		return nil, errors.New("cgroup: neither a cgroup2 hierarchy nor a v1 pids hierarchy is mounted (see /proc/self/mountinfo)")
	}
	for _, h := range hs {
		if err := checkDelegation(h); err != nil {
			return nil, err
		}
	}
	return hs, nil
}

// cgroupMounts reads where the caller's cgroups are, by kind, from
// /proc/self/cgroup and /proc/self/mountinfo.
func cgroupMounts() (map[string]hierarchy, error) {
	own, err := os.ReadFile("/proc/self/cgroup")
	if err != nil {
		return nil, err
	}
	paths := map[string]string{}
	for line := range strings.Lines(string(own)) {
		f := strings.SplitN(strings.TrimSuffix(line, "\n"), ":", 3)
		if len(f) != 3 {
			continue
		}
		if f[0] == "0" && f[1] == "" {
			paths[cgV2] = f[2]
		}
		for ctl := range strings.SplitSeq(f[1], ",") {
			if ctl == cgPids || ctl == cgMemory {
				paths[ctl] = f[2]
			}
		}
	}
	mi, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		return nil, err
	}
	found := map[string]hierarchy{}
	for line := range strings.Lines(string(mi)) {
		pre, post, ok := strings.Cut(strings.TrimSuffix(line, "\n"), " - ")
		f, g := strings.Fields(pre), strings.Fields(post)
		if !ok || len(f) < 5 || len(g) < 3 {
			continue
		}
		var kinds []string
		switch g[0] {
		case "cgroup2":
			kinds = []string{cgV2}
		case "cgroup":
			for opt := range strings.SplitSeq(g[2], ",") {
				if opt == cgPids || opt == cgMemory {
					kinds = append(kinds, opt)
				}
			}
		}
		for _, k := range kinds {
			h := hierarchy{kind: k, mount: unescapeMount(f[4]), root: unescapeMount(f[3]), path: paths[k]}
			_, seen := found[k]
			if seen || paths[k] == "" || !(h.root == "/" || h.path == h.root || strings.HasPrefix(h.path, h.root+"/")) {
				continue // a second mount, or one that does not show our cgroup
			}
			found[k] = h
		}
	}
	return found, nil
}

// unescapeMount undoes mountinfo's octal escapes (\040 for a space).
func unescapeMount(s string) string {
	if !strings.Contains(s, `\`) {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' && i+4 <= len(s) {
			if n, err := strconv.ParseUint(s[i+1:i+4], 8, 8); err == nil {
				b.WriteByte(byte(n))
				i += 3
				continue
			}
		}
		b.WriteByte(s[i])
	}
	return b.String()
}

// checkDelegation tells whether the caller may make and fill children of
// its cgroup in h. It asks the kernel with the caller's effective
// credentials (faccessat2 AT_EACCESS), which is right for real root, for an
// ordinary user and for root of a user namespace alike: a namespace's root
// writes only where the owner maps into the namespace.
func checkDelegation(h hierarchy) error {
	dir := h.dir()
	var missing []string
	if unix.Faccessat(unix.AT_FDCWD, dir, unix.W_OK|unix.X_OK, unix.AT_EACCESS) != nil {
		missing = append(missing, "write access to the directory")
	}
	files := []string{"cgroup.procs"}
	if h.kind == cgV2 {
		files = append(files, "cgroup.subtree_control")
	}
	for _, f := range files {
		if unix.Faccessat(unix.AT_FDCWD, path.Join(dir, f), unix.W_OK, unix.AT_EACCESS) != nil {
			missing = append(missing, "write access to "+f)
		}
	}
	if len(missing) == 0 {
		return nil
	}
	fix := "run incarnate under a systemd user session in a delegated scope: systemd-run --user --scope -p Delegate=yes incarnate ..."
	if h.kind != cgV2 {
		fix = "cgroup v1 hierarchies are not delegated to ordinary users: run incarnate as root, or on a host with the unified cgroup v2 hierarchy (systemd.unified_cgroup_hierarchy=1) under a systemd user session"
	}
	return &CgroupDelegationError{Path: dir, Missing: strings.Join(missing, ", "), Fix: fix}
}

// CgroupSupport says which kind of session cgroup this caller gets here
// ("v2 (root)", "v2 delegated", "v1 (root)", "v1 hybrid (root)"), or why
// it gets none and what would fix it. It changes nothing.
func CgroupSupport() (string, error) {
	hs, err := cgroupHierarchies(false)
	if err != nil {
		return "", err
	}
	who := "delegated"
	if hostRoot() {
		who = "(root)"
	}
	switch {
	case hs[0].kind == cgUnified:
		return "v1 hybrid " + who, nil
	case hs[0].kind == cgPids:
		return "v1 " + who, nil
	}
	ctl, err := os.ReadFile(path.Join(hs[0].dir(), "cgroup.controllers"))
	if err != nil {
		return "", err
	}
	if !hasWords(string(ctl), cgPids) && !hostRoot() { // root can use /incarnate, see v2Base
		return "", &CgroupDelegationError{Path: hs[0].dir(), Missing: "the pids controller",
			Fix: "have it delegated: systemd-run --user --scope -p Delegate=yes (systemd delegates pids and memory to user sessions by default)"}
	}
	return "v2 " + who, nil
}

// hostRoot is whether the caller is root of the initial user namespace.
func hostRoot() bool {
	if os.Geteuid() != 0 {
		return false
	}
	m, err := os.ReadFile("/proc/self/uid_map")
	return err == nil && strings.Join(strings.Fields(string(m)), " ") == "0 0 4294967295"
}

func hasWords(list string, want ...string) bool {
	have := strings.Fields(list)
	for _, w := range want {
		found := false
		for _, h := range have {
			found = found || h == w
		}
		if !found {
			return false
		}
	}
	return true
}

// make creates the session's cgroup in h.
func (c *SessionCgroup) make(h hierarchy) (*cgroupDir, error) {
	own, err := openDir(unix.AT_FDCWD, h.dir())
	if err != nil {
		return nil, err
	}
	d := &cgroupDir{kind: h.kind, origin: own, from: h.dir()}
	parent, base, rel := own, h.dir(), h.path
	if h.kind == cgV2 {
		if parent, base, rel, err = c.v2Base(h, own); err != nil {
			d.close()
			return nil, err
		}
	}
	if parent == own { // d.parent and d.origin are closed apart
		if parent, err = openDir(int(own.Fd()), "."); err != nil {
			d.close()
			return nil, err
		}
	}
	d.parent = parent
	if c.moved { // the caller is in the leaf now, and comes back there
		if d.origin, err = openDir(int(own.Fd()), cgroupLeaf); err != nil {
			own.Close()
			d.close()
			return nil, err
		}
		own.Close()
		d.from = path.Join(d.from, cgroupLeaf)
	}
	name := cgroupPrefix + c.id
	d.rel, d.shown = path.Join(rel, name), path.Join(base, name)
	err = unix.Mkdirat(int(parent.Fd()), name, 0o755)
	if errors.Is(err, unix.EEXIST) {
		if err = c.removeStale(d, name); err != nil {
			d.close()
			return nil, err
		}
		err = unix.Mkdirat(int(parent.Fd()), name, 0o755)
	}
	if err != nil {
		d.close()
		return nil, &os.PathError{Op: "mkdir", Path: d.shown, Err: err}
	}
	if d.dir, err = openDir(int(parent.Fd()), name); err != nil {
		unix.Unlinkat(int(parent.Fd()), name, unix.AT_REMOVEDIR)
		d.close()
		return nil, err
	}
	return d, nil
}

// removeStale removes a leftover incarnate-<id> unless something lives in
// it.
func (c *SessionCgroup) removeStale(d *cgroupDir, name string) error {
	fd, err := unix.Openat(int(d.parent.Fd()), name, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
	if err != nil {
		return err
	}
	busy, err := populated(fd)
	unix.Close(fd)
	if err != nil {
		return err
	}
	if busy {
		return fmt.Errorf("cgroup %q has processes: session %q is running: %w", d.shown, c.id, unix.EBUSY)
	}
	return removeCgroup(int(d.parent.Fd()), name, d.shown)
}

// v2Base returns where the session's v2 cgroup goes: the caller's cgroup
// once the controllers the limits need are enabled in its
// cgroup.subtree_control.
//
// The kernel refuses that while the caller's cgroup holds processes of its
// own, unless it is the root cgroup (EBUSY). A keeper always does: it is
// in there itself. The two ways out, by who the caller is:
//
//   - Root, not at the root of the hierarchy, goes to a cgroup of its own,
//     /incarnate, below the root cgroup, which is exempt from the rule.
//     Root's cgroup is a unit someone else manages (an ssh session's
//     scope, a service, a container) and moving its other processes would
//     pull them out from under that manager; a top-level cgroup of the
//     tool's own is what docker's and lxc's cgroupfs drivers do too. The
//     session leaves the caller's unit's accounting, which root can do
//     anyway.
//   - Anyone else owns its cgroup by delegation (systemd-run --user --scope
//     -p Delegate=yes), and the delegated cgroup is theirs to arrange: as
//     systemd's delegation notes ask, its processes move into a leaf child,
//     incarnate.leaf, and the controllers are enabled in the cgroup, now
//     only an inner node. That needs every process in it visible from here:
//     one in another PID namespace cannot be named in cgroup.procs.
func (c *SessionCgroup) v2Base(h hierarchy, own *os.File) (parent *os.File, base, rel string, err error) {
	need := []string{cgPids}
	if c.mem > 0 {
		need = append(need, cgMemory)
	}
	base, rel = h.dir(), h.path
	if path.Base(rel) == cgroupLeaf {
		// A caller a former session moved: the sessions are siblings of
		// its leaf.
		base, rel = path.Dir(base), path.Dir(rel)
		if parent, err = openDir(int(own.Fd()), ".."); err != nil {
			return nil, "", "", err
		}
		err = enableControllers(parent, base, need)
		if err != nil {
			parent.Close()
			return nil, "", "", err
		}
		return parent, base, rel, nil
	}
	if err = enableControllers(own, base, need); err == nil {
		return own, base, rel, nil
	}
	if !errors.Is(err, unix.EBUSY) && !errors.Is(err, unix.ENOENT) && !errors.Is(err, unix.EINVAL) {
		return nil, "", "", err
	}
	if atRoot := h.path == h.root; hostRoot() && !atRoot {
		return c.sharedBase(h, need)
	}
	if errors.Is(err, unix.EBUSY) {
		if err = c.moveToLeaf(own, base, need); err == nil {
			c.moved = true
			return own, base, rel, nil
		}
		return nil, "", "", err
	}
	return nil, "", "", &CgroupDelegationError{Path: base, Missing: "the controllers " + strings.Join(need, " ") + " (cgroup.controllers)",
		Fix: "have them delegated: systemd-run --user --scope -p Delegate=yes (systemd delegates pids and memory to user sessions by default)"}
}

// sharedBase is root's /incarnate, made if needed, with need enabled in
// the root cgroup and in it.
func (c *SessionCgroup) sharedBase(h hierarchy, need []string) (*os.File, string, string, error) {
	root, err := openDir(unix.AT_FDCWD, h.mount)
	if err != nil {
		return nil, "", "", err
	}
	defer root.Close()
	if err := enableControllers(root, h.mount, need); err != nil {
		return nil, "", "", err
	}
	base := path.Join(h.mount, cgroupShared)
	if err := unix.Mkdirat(int(root.Fd()), cgroupShared, 0o755); err != nil && !errors.Is(err, unix.EEXIST) {
		return nil, "", "", &os.PathError{Op: "mkdir", Path: base, Err: err}
	}
	shared, err := openDir(int(root.Fd()), cgroupShared)
	if err != nil {
		return nil, "", "", err
	}
	if err := enableControllers(shared, base, need); err != nil {
		shared.Close()
		return nil, "", "", err
	}
	return shared, base, path.Join(h.root, cgroupShared), nil
}

// moveToLeaf moves the processes of the cgroup own into its child
// incarnate.leaf, then enables need in own.
func (c *SessionCgroup) moveToLeaf(own *os.File, base string, need []string) error {
	leafPath := path.Join(base, cgroupLeaf)
	if err := unix.Mkdirat(int(own.Fd()), cgroupLeaf, 0o755); err != nil && !errors.Is(err, unix.EEXIST) {
		return &os.PathError{Op: "mkdir", Path: leafPath, Err: err}
	}
	leaf, err := openDir(int(own.Fd()), cgroupLeaf)
	if err != nil {
		return err
	}
	defer leaf.Close()
	// Processes may fork while they move; a few rounds catch the children.
	for range 10 {
		pids, err := readPids(int(own.Fd()))
		if err != nil {
			return &os.PathError{Op: "read", Path: base + "/cgroup.procs", Err: err}
		}
		if len(pids) == 0 {
			break
		}
		for _, pid := range pids {
			if pid == 0 {
				continue
			}
			if err := writeAt(leaf, leafPath, "cgroup.procs", strconv.Itoa(pid)); err != nil && !errors.Is(err, unix.ESRCH) {
				return err
			}
		}
	}
	err = enableControllers(own, base, need)
	if errors.Is(err, unix.EBUSY) {
		return &CgroupDelegationError{Path: base, Missing: "a cgroup without processes of its own (some are in another PID namespace and cannot be moved from here)",
			Fix: "run incarnate in a delegated scope of its own (systemd-run --user --scope -p Delegate=yes incarnate ...), or make the session cgroup before entering a new PID namespace"}
	}
	return err
}

// enableControllers makes sure need is in dir's cgroup.subtree_control.
func enableControllers(dir *os.File, shown string, need []string) error {
	have, err := readAt(dir, "cgroup.subtree_control")
	if err != nil {
		return &os.PathError{Op: "read", Path: shown + "/cgroup.subtree_control", Err: err}
	}
	var add []string
	for _, n := range need {
		if !hasWords(have, n) {
			add = append(add, "+"+n)
		}
	}
	if len(add) == 0 {
		return nil
	}
	return writeAt(dir, shown, "cgroup.subtree_control", strings.Join(add, " "))
}

// limit sets the session's limits in d.
func (c *SessionCgroup) limit(d *cgroupDir) error {
	pids := strconv.FormatInt(c.pids, 10)
	mem := strconv.FormatInt(c.mem, 10)
	switch d.kind {
	case cgV2:
		if err := writeAt(d.dir, d.shown, "pids.max", pids); err != nil {
			return err
		}
		if c.mem > 0 {
			if err := writeAt(d.dir, d.shown, "memory.max", mem); err != nil {
				return err
			}
			// Without swap: the limit is what the session gets, not what
			// it keeps in RAM while the rest goes out to disk.
			if err := writeAt(d.dir, d.shown, "memory.swap.max", "0"); err != nil && !errors.Is(err, unix.ENOENT) {
				return err
			}
		}
	case cgPids:
		return writeAt(d.dir, d.shown, "pids.max", pids)
	case cgMemory:
		if c.mem > 0 {
			if err := writeAt(d.dir, d.shown, "memory.limit_in_bytes", mem); err != nil {
				return err
			}
			// memsw, memory and swap together, exists with swap
			// accounting only, and must not be below the first.
			if err := writeAt(d.dir, d.shown, "memory.memsw.limit_in_bytes", mem); err != nil && !errors.Is(err, unix.ENOENT) {
				return err
			}
		}
	}
	return nil
}

// Enter moves the calling process, all its threads, into the session's
// cgroup in every hierarchy. Its children from then on are born there.
//
// A process moves by cgroup.procs, which takes the kernel's global
// threadgroup lock for writing: an RCU grace period, 7 to 15 ms on these
// machines, longer than all of bubblewrap's start. The keeper avoids it
// with BornInside; Enter is for a process that must be inside itself.
func (c *SessionCgroup) Enter() error {
	// The pid as the caller's own PID namespace numbers it, which is
	// the one the kernel reads cgroup.procs in.
	pid := strconv.Itoa(os.Getpid())
	for _, d := range c.dirs {
		if err := writeAt(d.dir, d.shown, "cgroup.procs", pid); err != nil {
			return fmt.Errorf("enter cgroup: %w", err)
		}
	}
	return nil
}

// BornInside readies attr so that the child the calling thread forks with
// it is born in the session's cgroup in every hierarchy, without a
// migration under the global lock (see Enter):
//
//   - in cgroup v2 by clone3's CLONE_INTO_CGROUP (Linux 5.7);
//   - in v1, which has no such flag, the calling thread alone joins the
//     session's cgroups by writing 0 (itself) to tasks, which the kernel
//     does without the global lock, and its children inherit the thread's
//     cgroups. The thread stays in until Close.
//
// The caller must be locked to its OS thread (the keeper's main thread),
// and call Close from it. A child forked so with CLONE_NEWCGROUP would
// get a cgroup namespace rooted where the parent is, not in the session:
// it unshares its own once it runs (the spawner does).
func (c *SessionCgroup) BornInside(attr *syscall.SysProcAttr) error {
	for _, d := range c.dirs {
		switch {
		case d.kind == cgV2 || d.kind == cgUnified:
			attr.UseCgroupFD, attr.CgroupFD = true, int(d.dir.Fd())
		case c.thread == 0 || c.thread == unix.Gettid():
			if err := writeAt(d.dir, d.shown, "tasks", "0"); err != nil {
				return fmt.Errorf("enter cgroup: %w", err)
			}
		default:
			return fmt.Errorf("enter cgroup %s: from thread %d, another than the one inside (%d)", d.shown, unix.Gettid(), c.thread)
		}
	}
	c.thread = unix.Gettid()
	return nil
}

// ForkExec is syscall.ForkExec of a child born in the session's cgroup
// (BornInside). Where clone3 cannot do that (a kernel before 5.7, or a
// container's seccomp profile that answers ENOSYS), the caller enters
// the cgroup itself, the slow way, and forks plainly.
func (c *SessionCgroup) ForkExec(path string, argv []string, attr *syscall.ProcAttr) (int, error) {
	if err := c.BornInside(attr.Sys); err != nil {
		return 0, err
	}
	pid, err := syscall.ForkExec(path, argv, attr)
	if attr.Sys.UseCgroupFD && (err == unix.ENOSYS || err == unix.EINVAL || err == unix.E2BIG) {
		if err := c.Enter(); err != nil {
			return 0, err
		}
		attr.Sys.UseCgroupFD = false
		pid, err = syscall.ForkExec(path, argv, attr)
	}
	return pid, err
}

// Close ends the session's cgroup: it moves the caller back where it came
// from, kills whatever is left inside, and removes the cgroup, through the
// fds alone. It returns the first error and goes on past it.
func (c *SessionCgroup) Close() error {
	var first error
	keep := func(err error) {
		if first == nil && err != nil {
			first = err
		}
	}
	// Out first, if in: cgroup.kill would take the caller too.
	for _, d := range c.dirs {
		if d.dir == nil || d.origin == nil {
			continue
		}
		if d.kind != cgV2 && d.kind != cgUnified && c.thread == unix.Gettid() {
			keep(writeAt(d.origin, d.from, "tasks", "0"))
			continue
		}
		pids, err := readPids(int(d.dir.Fd()))
		keep(err)
		if slices.Contains(pids, os.Getpid()) {
			keep(writeAt(d.origin, d.from, "cgroup.procs", strconv.Itoa(os.Getpid())))
		}
	}
	for _, d := range c.dirs {
		if d.dir != nil {
			keep(killCgroup(d))
		}
	}
	for _, d := range c.dirs {
		if d.dir != nil {
			keep(removeCgroup(int(d.parent.Fd()), path.Base(d.shown), d.shown))
		}
		d.close()
	}
	c.dirs = nil
	return first
}

func (d *cgroupDir) close() {
	for _, f := range []*os.File{d.dir, d.parent, d.origin} {
		if f != nil {
			f.Close()
		}
	}
	d.dir, d.parent, d.origin = nil, nil, nil
}

// killCgroup kills every process in d and below: at once with cgroup.kill
// where there is one (v2, Linux 5.14), which also catches processes forking
// under it; else by SIGKILL to each pid in cgroup.procs, round after round
// until none is left, which a fork bomb cannot outrun for long as its pids
// limit holds it.
func killCgroup(d *cgroupDir) error {
	if d.kind == cgV2 || d.kind == cgUnified {
		err := writeAt(d.dir, d.shown, "cgroup.kill", "1")
		if err == nil {
			return nil
		}
		if !errors.Is(err, unix.ENOENT) {
			return err
		}
	}
	deadline := time.Now().Add(5 * time.Second)
	for {
		pids, err := treePids(int(d.dir.Fd()))
		if err != nil {
			return &os.PathError{Op: "read", Path: d.shown + "/cgroup.procs", Err: err}
		}
		live := 0
		for _, p := range pids {
			if p > 0 && unix.Kill(p, unix.SIGKILL) == nil {
				live++
			}
		}
		if live == 0 {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("kill cgroup %q: %d processes still there", d.shown, live)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// removeCgroup removes the cgroup name below the directory fd parent, its
// children first. A cgroup is removable once its last task has exited,
// which a SIGKILL'd one does shortly after the signal: EBUSY is retried for
// a while.
func removeCgroup(parent int, name, shown string) error {
	fd, err := unix.Openat(parent, name, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
	if errors.Is(err, unix.ENOENT) {
		return nil
	}
	if err != nil {
		return &os.PathError{Op: "open", Path: shown, Err: err}
	}
	subs, err := subCgroups(fd)
	if err == nil {
		for _, s := range subs {
			if err = removeCgroup(fd, s, path.Join(shown, s)); err != nil {
				break
			}
		}
	}
	unix.Close(fd)
	if err != nil {
		return err
	}
	delay := time.Millisecond
	for deadline := time.Now().Add(5 * time.Second); ; {
		err = unix.Unlinkat(parent, name, unix.AT_REMOVEDIR)
		if !errors.Is(err, unix.EBUSY) || time.Now().After(deadline) {
			break
		}
		time.Sleep(delay)
		delay = min(2*delay, 50*time.Millisecond)
	}
	if err != nil && !errors.Is(err, unix.ENOENT) {
		return &os.PathError{Op: "rmdir", Path: shown, Err: err}
	}
	return nil
}

// subCgroups lists the child cgroups of the cgroup open at fd: its
// directories.
func subCgroups(fd int) ([]string, error) {
	dup, err := unix.Openat(fd, ".", unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, err
	}
	f := os.NewFile(uintptr(dup), ".")
	defer f.Close()
	ents, err := f.ReadDir(-1)
	var subs []string
	for _, e := range ents {
		if e.IsDir() {
			subs = append(subs, e.Name())
		}
	}
	return subs, err
}

// populated is whether a process is in the cgroup open at fd or below.
func populated(fd int) (bool, error) {
	pids, err := treePids(fd)
	return len(pids) > 0, err
}

// treePids lists the processes in the cgroup open at fd and below. A
// process outside the reader's PID namespace shows as 0.
func treePids(fd int) ([]int, error) {
	pids, err := readPids(fd)
	if err != nil {
		return nil, err
	}
	subs, err := subCgroups(fd)
	if err != nil {
		return nil, err
	}
	for _, s := range subs {
		sub, err := unix.Openat(fd, s, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
		if errors.Is(err, unix.ENOENT) {
			continue
		}
		if err != nil {
			return nil, err
		}
		more, err := treePids(sub)
		unix.Close(sub)
		if err != nil {
			return nil, err
		}
		pids = append(pids, more...)
	}
	return pids, nil
}

// readPids reads cgroup.procs of the cgroup open at fd.
func readPids(fd int) ([]int, error) {
	f, err := openFileAt(fd, "cgroup.procs", unix.O_RDONLY)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	var pids []int
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if p, err := strconv.Atoi(string(bytes.TrimSpace(sc.Bytes()))); err == nil {
			pids = append(pids, p)
		}
	}
	return pids, sc.Err()
}

func openDir(dirfd int, name string) (*os.File, error) {
	fd, err := unix.Openat(dirfd, name, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, &os.PathError{Op: "open", Path: name, Err: err}
	}
	return os.NewFile(uintptr(fd), name), nil
}

func openFileAt(dirfd int, name string, flag int) (*os.File, error) {
	fd, err := unix.Openat(dirfd, name, flag|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, err
	}
	return os.NewFile(uintptr(fd), name), nil
}

// writeAt writes val to the control file name of the cgroup dir, in one
// write as cgroupfs wants; shown names dir in the error.
func writeAt(dir *os.File, shown, name, val string) error {
	f, err := openFileAt(int(dir.Fd()), name, unix.O_WRONLY)
	if err == nil {
		_, err = f.Write([]byte(val))
		if cerr := f.Close(); err == nil {
			err = cerr
		}
	}
	if err != nil {
		var pe *os.PathError
		if errors.As(err, &pe) {
			err = pe.Err
		}
		return &os.PathError{Op: "write " + val + " to", Path: path.Join(shown, name), Err: err}
	}
	return nil
}

func readAt(dir *os.File, name string) (string, error) {
	f, err := openFileAt(int(dir.Fd()), name, unix.O_RDONLY)
	if err != nil {
		return "", err
	}
	defer f.Close()
	var b bytes.Buffer
	_, err = b.ReadFrom(f)
	return b.String(), err
}

// Describe names the session's cgroups and limits, e.g.
// "cgroup v2 /user.slice/.../incarnate-ab12 (pids.max 8192, memory.max 1G)".
func (c *SessionCgroup) Describe() string {
	var where []string
	v1 := false
	for _, d := range c.dirs {
		switch d.kind {
		case cgV2:
			where = append(where, d.rel)
		default:
			v1 = true
			where = append(where, d.kind+":"+d.rel)
		}
	}
	lims := fmt.Sprintf("pids.max %d", c.pids)
	if c.mem > 0 {
		name := "memory.max"
		if v1 {
			name = "memory.limit_in_bytes"
		}
		lims += ", " + name + " " + FormatSize(c.mem)
	}
	ver := "cgroup v2 "
	if v1 {
		ver = "cgroup v1 "
	}
	return ver + strings.Join(where, " ") + " (" + lims + ")"
}
