package sandbox

import (
	"fmt"
	"path"
	"strings"
	"syscall"
)

// An Op is one step of a child's setup, applied in list order after clone
// and before the target is executed. Ops are plain data: the parent builds
// and validates them, they travel to the re-exec'd stage as JSON, and only
// the stage (ops_linux.go) gives them effect.
type Op interface {
	// Kind names the op in specs, error records and messages.
	Kind() string
	// Status is the exit status the stage falls back to when it cannot
	// report a failure of this op through the error pipe.
	Status() int
	// Validate checks the op's arguments before any child exists.
	Validate() error
}

// Fallback exit statuses. 110–119 are the seed's and are kept as
// documented; the ops added since take the free range below them.
const (
	StatusStage          = 100 // the stage could not read its spec
	StatusMakeRslave     = 101
	StatusMountProc      = 102
	StatusMountDev       = 103
	StatusMountSysfs     = 104
	StatusMountTmpfs     = 105
	StatusBind           = 106
	StatusHostname       = 107
	StatusCloseFds       = 108
	StatusUserNamespace  = 109
	StatusLoopbackUp     = 120
	StatusStartSpawner   = 121
	StatusCgroup         = 122
	StatusFreshKeyring   = 123
	StatusLandlock       = 124
	StatusCapBounds      = 125
	StatusNoNewPrivs     = 110
	StatusParentDeathSig = 111
	StatusDumpable       = 112
	StatusNewSession     = 113
	StatusChdir          = 114
	StatusMountOverlay   = 115
	StatusBindNewRoot    = 116
	StatusPivotRoot      = 117
	StatusChdirRoot      = 118
	StatusDetachOldRoot  = 119
	StatusCannotExec     = 126 // as in sh: found but not executable
	StatusSeccomp        = 99
	StatusMountFuse      = 97
	StatusNotFound       = 127 // as in sh: command not found
)

// MakeRslave turns every mount the new namespace inherited into a slave
// (or, with Private, a private) mount. It must come first: without it a
// mount made inside would propagate back to the host's shared mounts.
type MakeRslave struct {
	Private bool `json:"private,omitempty"`
}

// MountOverlay mounts an overlay of Lowers (top first) and Upper on Target.
type MountOverlay struct {
	Target string   `json:"target"`
	Lowers []string `json:"lowers"`
	Upper  string   `json:"upper"`
	Work   string   `json:"work"`
	// UserXattr stores overlay metadata in user.* xattrs, which is what a
	// mount inside a user namespace must use (kernel ≥ 5.11). An upper dir
	// written one way cannot be mounted the other way.
	UserXattr bool `json:"userxattr,omitempty"`
	// Legacy forces mount(2) even where the new mount API exists, so the
	// fallback path stays tested.
	Legacy bool `json:"legacy,omitempty"`
	// IDMap sees every layer through an idmapped mount of the session's
	// user namespace (made by the keeper), so that a session whose root
	// is an unprivileged host id sees its files with the ids they have on
	// disk, and writes them so. Upper and Work must lie in Home, or
	// share a parent when Home is empty.
	IDMap bool   `json:"idmap,omitempty"`
	Home  string `json:"home,omitempty"`
	// Optional lets the root be built without this overlay when it
	// cannot be mounted (a submount of a kind overlay refuses); Note,
	// when set, then tells the user so, with the error after it.
	Optional bool   `json:"optional,omitempty"`
	Note     string `json:"note,omitempty"`
}

// MountFuseOverlay mounts fuse-overlayfs (the binary at Program) on
// Target: Lowers (top first), each with everything mounted below it,
// under Upper. It is how an ordinary user's session sees the whole host
// (fuse_linux.go); the daemon lives as long as the keeper.
type MountFuseOverlay struct {
	Target  string   `json:"target"`
	Lowers  []string `json:"lowers"`
	Upper   string   `json:"upper"`
	Work    string   `json:"work"`
	Program string   `json:"program"`
	// Shift, for a keeper that runs as the host's root, is the first
	// host id of the session's range: the daemon shows host id N as
	// Shift+N, which the session's user namespace sees as N.
	Shift int `json:"shift,omitempty"`
}

// MountProc mounts a proc filesystem for the new PID namespace.
type MountProc struct {
	Target string `json:"target"`
}

// MountDev builds a minimal /dev on a tmpfs: the harmless character
// devices bound from the host, a new devpts instance with its own ptmx,
// /dev/shm and the usual symlinks. No host pty is reachable from it.
type MountDev struct {
	Target string `json:"target"`
}

// MountSysfs mounts sysfs read-only. Where the kernel refuses a new sysfs
// (a user namespace that shares the host's network namespace), the host's
// /sys is bound read-only instead.
type MountSysfs struct {
	Target string `json:"target"`
}

// MountTmpfs mounts an empty tmpfs.
type MountTmpfs struct {
	Target string `json:"target"`
	Mode   uint32 `json:"mode"`
	// Hide: the tmpfs covers a host directory the root shows, which must
	// not be reached. Target is then resolved in the root with no symlink
	// followed, and nothing is made: where the session's own files
	// replace a part of the path (a symlink, a file, a deletion), the
	// host directory is not reached through it, and there is nothing to
	// cover.
	Hide bool `json:"hide,omitempty"`
}

// Bind makes Src visible at Dst, recursively, read-only unless Writable.
// A missing Src is an error unless Optional.
type Bind struct {
	Src      string `json:"src"`
	Dst      string `json:"dst"`
	Writable bool   `json:"writable,omitempty"`
	Optional bool   `json:"optional,omitempty"`
	// Resolved: Src was resolved when the bind was chosen, so no part of
	// it may be a symlink now. A symlink there is one a session may have
	// made, through another, writable bind of a directory above Src.
	Resolved bool `json:"resolved,omitempty"`
}

// PivotRoot makes NewRoot the root of the mount namespace and detaches
// the old root.
type PivotRoot struct {
	NewRoot string `json:"new_root"`
}

// Hostname sets the UTS namespace's host name.
type Hostname struct {
	Name string `json:"name"`
}

// Cgroup makes the session a cgroup of its own (cgroup_linux.go) with its
// limits: Pids (0 for the default) and Memory (bytes, 0 for none). What
// the keeper starts from then on, the spawner and so everything the
// session runs, is born in it; the spawner's cgroup namespace is rooted
// there. Where the caller has no cgroup to delegate from,
// Optional lets the session go on without limits.
type Cgroup struct {
	ID       string `json:"id"`
	Pids     int64  `json:"pids,omitempty"`
	Memory   int64  `json:"memory,omitempty"`
	Optional bool   `json:"optional,omitempty"`
}

// StartSpawner starts the keeper's spawner (spawner_linux.go) in the
// session's user namespace, which later ops idmap the layers through.
// It needs a /proc of the keeper's own PID namespace: the namespace's id
// maps are written through /proc/PID.
type StartSpawner struct{}

// LoopbackUp brings up "lo" in a new network namespace, which starts
// with it down: a session without network still has 127.0.0.1.
type LoopbackUp struct{}

// CloseFds marks every descriptor above stderr close-on-exec, so nothing
// the stage inherited by accident reaches the target.
type CloseFds struct{}

// NoNewPrivs sets no_new_privs: no exec inside can gain privileges.
type NoNewPrivs struct{}

// ParentDeathSig asks the kernel to send Signal when the parent dies.
type ParentDeathSig struct {
	Signal syscall.Signal `json:"signal"`
}

// Dumpable sets whether the process may be ptraced or have its memory and
// /proc files opened by processes of the same user.
type Dumpable struct {
	On bool `json:"on"`
}

// NewSession makes the target a session leader, with the terminal on its
// standard input as controlling terminal when Ctty is set.
type NewSession struct {
	Ctty bool `json:"ctty,omitempty"`
}

// Chdir sets the working directory the target starts in. OrElse, when
// set, is used instead if Path does not exist (a home the base lacks),
// and "/" when neither does.
type Chdir struct {
	Path   string `json:"path"`
	OrElse string `json:"or_else,omitempty"`
}

// UserNamespace starts the target in a user namespace of its own. With
// Count set, ids 0 to Count-1 inside are host ids UID... and GID...: the
// session's own range, so root inside is nobody on the host. Without, it
// maps every id the stage has to itself (a rootless stage, whose ids are
// the user's already). Either way its capabilities reach only namespaces
// the new user namespace owns, and the stage's mount, PID and UTS
// namespaces are not among them: no mount, no mknod, no host sysctl, no
// ptrace of the stage (so no way to its binary through /proc/1/exe).
type UserNamespace struct {
	UID   int `json:"uid,omitempty"`
	GID   int `json:"gid,omitempty"`
	Count int `json:"count,omitempty"`
}

// Umask sets the file creation mask the target starts with.
type Umask struct {
	Mode uint32 `json:"mode"`
}

func (MakeRslave) Kind() string       { return "make_rslave" }
func (MountOverlay) Kind() string     { return "mount_overlay" }
func (MountFuseOverlay) Kind() string { return "mount_fuse_overlay" }
func (MountProc) Kind() string        { return "mount_proc" }
func (MountDev) Kind() string         { return "mount_dev" }
func (MountSysfs) Kind() string       { return "mount_sysfs" }
func (MountTmpfs) Kind() string       { return "mount_tmpfs" }
func (Bind) Kind() string             { return "bind" }
func (PivotRoot) Kind() string        { return "pivot_root" }
func (Hostname) Kind() string         { return "hostname" }
func (CloseFds) Kind() string         { return "close_fds" }
func (LoopbackUp) Kind() string       { return "loopback_up" }
func (StartSpawner) Kind() string     { return "start_spawner" }
func (Cgroup) Kind() string           { return "cgroup" }
func (NoNewPrivs) Kind() string       { return "no_new_privs" }
func (ParentDeathSig) Kind() string   { return "parent_death_sig" }
func (Dumpable) Kind() string         { return "dumpable" }
func (NewSession) Kind() string       { return "new_session" }
func (Chdir) Kind() string            { return "chdir" }
func (Umask) Kind() string            { return "umask" }
func (UserNamespace) Kind() string    { return "user_namespace" }

func (MakeRslave) Status() int       { return StatusMakeRslave }
func (MountOverlay) Status() int     { return StatusMountOverlay }
func (MountFuseOverlay) Status() int { return StatusMountFuse }
func (MountProc) Status() int        { return StatusMountProc }
func (MountDev) Status() int         { return StatusMountDev }
func (MountSysfs) Status() int       { return StatusMountSysfs }
func (MountTmpfs) Status() int       { return StatusMountTmpfs }
func (Bind) Status() int             { return StatusBind }
func (PivotRoot) Status() int        { return StatusPivotRoot }
func (Hostname) Status() int         { return StatusHostname }
func (CloseFds) Status() int         { return StatusCloseFds }
func (LoopbackUp) Status() int       { return StatusLoopbackUp }
func (StartSpawner) Status() int     { return StatusStartSpawner }
func (Cgroup) Status() int           { return StatusCgroup }
func (NoNewPrivs) Status() int       { return StatusNoNewPrivs }
func (ParentDeathSig) Status() int   { return StatusParentDeathSig }
func (Dumpable) Status() int         { return StatusDumpable }
func (NewSession) Status() int       { return StatusNewSession }
func (Chdir) Status() int            { return StatusChdir }
func (Umask) Status() int            { return 0 }
func (UserNamespace) Status() int    { return StatusUserNamespace }

func (MakeRslave) Validate() error   { return nil }
func (CloseFds) Validate() error     { return nil }
func (LoopbackUp) Validate() error   { return nil }
func (StartSpawner) Validate() error { return nil }
func (NoNewPrivs) Validate() error   { return nil }
func (Dumpable) Validate() error     { return nil }
func (NewSession) Validate() error   { return nil }
func (o MountProc) Validate() error  { return checkAbs(o, o.Target) }
func (o MountDev) Validate() error   { return checkAbs(o, o.Target) }
func (o MountSysfs) Validate() error { return checkAbs(o, o.Target) }
func (o MountTmpfs) Validate() error { return checkAbs(o, o.Target) }
func (o Chdir) Validate() error {
	if o.OrElse != "" {
		if err := checkAbs(o, o.OrElse); err != nil {
			return err
		}
	}
	return checkAbs(o, o.Path)
}
func (o PivotRoot) Validate() error { return validatePivot(o) }

func (o Cgroup) Validate() error {
	if o.ID == "" || len(o.ID) > 64 || strings.Trim(o.ID, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._-") != "" {
		return &InvalidOpError{Op: o.Kind(), Path: o.ID, Reason: "a cgroup id is 1 to 64 letters, digits, '.', '_' or '-'"}
	}
	if o.Pids < 0 || o.Memory < 0 {
		return &InvalidOpError{Op: o.Kind(), Reason: "limits cannot be negative"}
	}
	return nil
}

func (o UserNamespace) Validate() error {
	if o.Count < 0 || o.Count > 1<<16 || o.UID < 0 || o.GID < 0 || (o.Count > 0 && (o.UID == 0 || o.GID == 0)) {
		return &InvalidOpError{Op: o.Kind(), Reason: fmt.Sprintf("id range %d/%d+%d: want up to 65536 ids that do not start at host root", o.UID, o.GID, o.Count)}
	}
	return nil
}
func (o MountOverlay) Validate() error { return validateOverlay(o) }

func (o MountFuseOverlay) Validate() error {
	if len(o.Lowers) == 0 || len(o.Lowers) > maxLowers {
		return &InvalidOpError{Op: o.Kind(), Reason: fmt.Sprintf("an overlay takes 1 to %d lower dirs, not %d", maxLowers, len(o.Lowers))}
	}
	for _, p := range append([]string{o.Target, o.Upper, o.Work, o.Program}, o.Lowers...) {
		if err := checkAbs(o, p); err != nil {
			return err
		}
	}
	return nil
}

func (o Bind) Validate() error {
	if err := checkAbs(o, o.Src); err != nil {
		return err
	}
	return checkAbs(o, o.Dst)
}

func (o Hostname) Validate() error {
	// The kernel's limit (HOST_NAME_MAX) is 64 bytes.
	if o.Name == "" || len(o.Name) > 64 || strings.ContainsRune(o.Name, 0) {
		return &InvalidOpError{Op: o.Kind(), Path: o.Name, Reason: "a host name is 1 to 64 bytes without NUL"}
	}
	return nil
}

func (o ParentDeathSig) Validate() error {
	if o.Signal <= 0 || o.Signal > 64 {
		return &InvalidOpError{Op: o.Kind(), Reason: fmt.Sprintf("signal %d out of range", int(o.Signal))}
	}
	return nil
}

func (o Umask) Validate() error {
	if o.Mode > 0o777 {
		return &InvalidOpError{Op: o.Kind(), Reason: fmt.Sprintf("umask %#o out of range", o.Mode)}
	}
	return nil
}

// NewPivotRoot pivots to newRoot.
func NewPivotRoot(newRoot string) PivotRoot { return PivotRoot{NewRoot: newRoot} }

func validatePivot(o PivotRoot) error { return checkAbs(o, o.NewRoot) }

// checkAbs refuses what the kernel would misread: empty, relative or
// unclean paths, a NUL byte (which would cut the path short), and paths
// longer than PATH_MAX.
func checkAbs(op Op, p string) error {
	bad := func(reason string) error { return &InvalidOpError{Op: op.Kind(), Path: p, Reason: reason} }
	switch {
	case strings.ContainsRune(p, 0):
		return bad("path contains a NUL byte")
	case p == "":
		return bad("path is empty")
	case !path.IsAbs(p):
		return bad("path is not absolute")
	case len(p) >= 4096:
		return bad("path is longer than PATH_MAX (4096)")
	case path.Clean(p) != p:
		return bad("path is not clean")
	}
	return nil
}
