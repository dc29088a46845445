package cli

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"

	"golang.org/x/sys/unix"

	"github.com/incarnate-dev/incarnate/internal/fsutil"
	"github.com/incarnate-dev/incarnate/sandbox"
	"github.com/incarnate-dev/incarnate/session"
)

// doctor answers "why does incarnate not work here?" with the cause and
// the fix, instead of a bare EPERM from deep inside the sandbox. Where it
// can, a check tries the real thing (a user namespace, an overlay mount,
// an xattr in the store) rather than guessing from settings.

// verdict is a check's outcome.
type verdict int

const (
	pass verdict = iota
	warn
	fail
	skip // the check does not apply to this user: nothing is printed
)

// result is what one check found, and what to do about it when not ok.
type result struct {
	verdict verdict
	detail  string
	fix     string
}

// check is one line of the doctor's report. needed says whether a
// failure stops sessions of this user (root or not) from working; a
// failure of a check that is not needed is only a warning.
type check struct {
	name   string
	needed func(root bool) bool
	run    func(e *doctorEnv) result
}

// doctorEnv is what the checks look at.
type doctorEnv struct {
	root     bool   // running as root: sessions mount with real privileges
	store    string // the store's root directory, "" when it cannot be opened
	storeErr error
}

func always(bool) bool        { return true }
func never(bool) bool         { return false }
func asRoot(root bool) bool   { return root }
func rootless(root bool) bool { return !root }

func doctorChecks() []check {
	return []check{
		{"kernel", rootless, checkKernel},
		{"user namespaces", rootless, checkUserNS},
		{"overlay filesystem", always, checkOverlayListed},
		{"store", always, checkStore},
		{"overlay as root", asRoot, checkOverlayAsRoot},
		{"overlay in a user namespace", rootless, checkOverlayInUserNS},
		{"runtime dir", always, checkRuntimeDir},
		{"idmapped mounts", asRoot, checkIdmap},
		{"cgroup", never, checkCgroup},
		{"seccomp", always, checkSeccomp},
		{"landlock", never, checkLandlock},
		{"keeper binary", never, checkKeeperBinary},
		{"sub-ids", never, checkSubIDs},
		{"host base", rootless, checkHostBase}, // the default base
	}
}

func cmdDoctor(c *ctx, args []string) error {
	fs := newFlags(c, "doctor")
	pos, err := c.parseArgs(fs, args)
	if err != nil {
		return err
	}
	if len(pos) != 0 {
		return usagef("doctor takes no arguments")
	}
	return runChecks(c.stdout, doctorChecks(), c.doctorEnv())
}

// doctorEnv is what the checks look at for this caller.
func (c *ctx) doctorEnv() *doctorEnv {
	e := &doctorEnv{root: os.Geteuid() == 0}
	if st, err := c.openStore(); err != nil {
		e.storeErr = err
	} else {
		e.store = st.Root
	}
	return e
}

// runChecks prints one line per check and a summary, and returns exit
// status 1 when a needed check failed.
func runChecks(w io.Writer, checks []check, e *doctorEnv) error {
	failed, warned := 0, 0
	for _, ch := range checks {
		r := ch.run(e)
		r.verdict = r.effective(ch.needed(e.root))
		switch r.verdict {
		case fail:
			failed++
		case warn:
			warned++
		}
		printResult(w, ch.name, r)
	}
	fmt.Fprintln(w, summary(failed, warned))
	if failed > 0 {
		return exitStatus(1)
	}
	return nil
}

// effective downgrades the failure of a check this user does not need.
func (r result) effective(needed bool) verdict {
	if r.verdict == fail && !needed {
		return warn
	}
	return r.verdict
}

var verdictLabel = map[verdict]string{pass: "ok", warn: "warn", fail: "FAIL"}

func printResult(w io.Writer, name string, r result) {
	if r.verdict == skip {
		return
	}
	fmt.Fprintf(w, "%-5s %s: %s\n", verdictLabel[r.verdict], name, r.detail)
	if r.verdict != pass && r.fix != "" {
		fmt.Fprintf(w, "      fix: %s\n", r.fix)
	}
}

func summary(failed, warned int) string {
	s := "all needed checks passed"
	if failed > 0 {
		s = fmt.Sprintf("%d needed check(s) failed", failed)
	}
	if warned > 0 {
		s += fmt.Sprintf(", %d warning(s)", warned)
	}
	return s
}

func good(format string, a ...any) result {
	return result{verdict: pass, detail: fmt.Sprintf(format, a...)}
}

func bad(v verdict, detail, fix string) result { return result{verdict: v, detail: detail, fix: fix} }

// The kernel files the checks read; variables so tests can point them at
// files of their own.
var (
	procMaxUserNS      = "/proc/sys/user/max_user_namespaces"
	procUnprivUserNS   = "/proc/sys/kernel/unprivileged_userns_clone"
	procAppArmorUserNS = "/proc/sys/kernel/apparmor_restrict_unprivileged_userns"
	procFilesystems    = "/proc/filesystems"
)

// --- kernel

// userxattrKernel is the first kernel that mounts an overlay inside a
// user namespace, with overlay metadata in user.* xattrs.
var userxattrKernel = [2]int{5, 11}

func checkKernel(*doctorEnv) result {
	var u unix.Utsname
	if err := unix.Uname(&u); err != nil {
		return bad(warn, fmt.Sprintf("cannot read the kernel version: %v", err), "")
	}
	return kernelResult(unix.ByteSliceToString(u.Release[:]))
}

func kernelResult(release string) result {
	v, err := parseKernel(release)
	if err != nil {
		return bad(warn, err.Error(), "")
	}
	if v[0] < userxattrKernel[0] || v[0] == userxattrKernel[0] && v[1] < userxattrKernel[1] {
		return bad(fail, fmt.Sprintf("%s is older than 5.11, the first that mounts an overlay in a user namespace (userxattr)", release),
			"upgrade the kernel to 5.11 or later, or run incarnate as root")
	}
	return good("%s (an overlay in a user namespace needs 5.11)", release)
}

// parseKernel reads the major and minor number of a release such as
// "6.8.0-45-generic".
func parseKernel(release string) ([2]int, error) {
	parts := strings.SplitN(release, ".", 3)
	if len(parts) >= 2 {
		major, err1 := strconv.Atoi(parts[0])
		minor, err2 := strconv.Atoi(strings.TrimRightFunc(parts[1], func(r rune) bool { return r < '0' || r > '9' }))
		if err1 == nil && err2 == nil {
			return [2]int{major, minor}, nil
		}
	}
	return [2]int{}, fmt.Errorf("cannot tell the version of kernel %q", release)
}

// --- user namespaces

// usernsSetting is a sysctl that, at the bad value, keeps users out of
// user namespaces. rootToo marks one that stops root as well.
type usernsSetting struct {
	path    *string
	bad     string
	rootToo bool
	detail  string
	fix     string
}

var usernsSettings = []usernsSetting{
	{&procMaxUserNS, "0", true,
		"user.max_user_namespaces is 0: no user namespace can be created",
		"sudo sysctl -w user.max_user_namespaces=10000 (and set it in /etc/sysctl.d/ to keep it)"},
	{&procUnprivUserNS, "0", false,
		"kernel.unprivileged_userns_clone is 0: only root may create user namespaces",
		"sudo sysctl -w kernel.unprivileged_userns_clone=1 (and set it in /etc/sysctl.d/ to keep it)"},
	{&procAppArmorUserNS, "1", false,
		"AppArmor restricts unprivileged user namespaces (kernel.apparmor_restrict_unprivileged_userns=1): they get no capabilities, so nothing can be mounted in them",
		"sudo sysctl -w kernel.apparmor_restrict_unprivileged_userns=0 (and set it in /etc/sysctl.d/ to keep it), or give incarnate an AppArmor profile with `userns,`"},
}

// checkUserNS reads the settings first, since they name the cause, then
// creates a namespace, since only that shows it really works.
func checkUserNS(e *doctorEnv) result {
	if _, err := os.Stat(procMaxUserNS); errors.Is(err, os.ErrNotExist) {
		return bad(fail, fmt.Sprintf("the kernel has no user namespaces (no %s)", procMaxUserNS),
			"a kernel built with CONFIG_USER_NS, or run incarnate as root")
	}
	for _, s := range usernsSettings {
		if v, err := os.ReadFile(*s.path); err == nil && strings.TrimSpace(string(v)) == s.bad && (s.rootToo || !e.root) {
			return bad(fail, s.detail, s.fix)
		}
	}
	if err := probeUserNS(); err != nil {
		return userNSProbeFailed(err)
	}
	return good("a probe namespace mapping you to root was created")
}

func userNSProbeFailed(err error) result {
	detail := fmt.Sprintf("creating a probe namespace failed: %v", err)
	switch {
	case errors.Is(err, unix.EPERM), errors.Is(err, unix.EACCES):
		return bad(fail, detail, "user namespaces are refused to you: in a container, allow them (seccomp, --privileged or a userns-enabled runtime); else check the sysctls kernel.unprivileged_userns_clone and user.max_user_namespaces")
	case errors.Is(err, unix.ENOSPC):
		return bad(fail, detail, "the limit on user namespaces is reached: sudo sysctl -w user.max_user_namespaces=10000")
	case errors.Is(err, unix.EINVAL):
		return bad(fail, detail, "a kernel built with CONFIG_USER_NS, or run incarnate as root")
	}
	return bad(fail, detail, "")
}

// probeUserNS starts `true` in a new user and mount namespace that maps
// the caller to root, as the sandbox does for an ordinary user.
func probeUserNS() error {
	bin, err := exec.LookPath("true")
	if err != nil {
		return fmt.Errorf("no `true` to probe with: %w", err)
	}
	pid, err := syscall.ForkExec(bin, []string{"true"}, &syscall.ProcAttr{Sys: &syscall.SysProcAttr{
		Cloneflags:                 unix.CLONE_NEWUSER | unix.CLONE_NEWNS,
		UidMappings:                []syscall.SysProcIDMap{{ContainerID: 0, HostID: os.Getuid(), Size: 1}},
		GidMappings:                []syscall.SysProcIDMap{{ContainerID: 0, HostID: os.Getgid(), Size: 1}},
		GidMappingsEnableSetgroups: false,
	}})
	if err != nil {
		return err
	}
	if status := reapChild(pid); status != 0 {
		return fmt.Errorf("%s in the probe namespace exited with status %d", bin, status)
	}
	return nil
}

func reapChild(pid int) int {
	var ws unix.WaitStatus
	for {
		_, err := unix.Wait4(pid, &ws, 0, nil)
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			return -1
		}
		return sandbox.ExitCode(ws)
	}
}

// --- overlay

func checkOverlayListed(*doctorEnv) result {
	b, err := os.ReadFile(procFilesystems)
	if err != nil {
		return bad(warn, fmt.Sprintf("cannot read %s: %v", procFilesystems, err), "")
	}
	for _, line := range strings.Split(string(b), "\n") {
		if f := strings.Fields(line); len(f) > 0 && f[len(f)-1] == "overlay" {
			return good("the kernel has overlayfs")
		}
	}
	return bad(fail, fmt.Sprintf("overlay is not in %s: not built in and not loaded", procFilesystems),
		"sudo modprobe overlay (and list overlay in /etc/modules-load.d/ to load it at boot)")
}

func checkOverlayAsRoot(e *doctorEnv) result {
	if !e.root {
		return result{verdict: skip}
	}
	return overlayResult(e, false, "an overlay was mounted in the store and pivoted into")
}

func checkOverlayInUserNS(e *doctorEnv) result {
	return overlayResult(e, true, "an overlay with userxattr was mounted in the store and pivoted into")
}

func overlayResult(e *doctorEnv, inUserNS bool, success string) result {
	if e.store == "" {
		return bad(fail, "not probed: the store cannot be opened (see above)", "")
	}
	if err := probeOverlay(filepath.Join(e.store, "tmp"), inUserNS); err != nil {
		return bad(fail, err.Error(), overlayFix(err, inUserNS))
	}
	return good("%s", success)
}

func overlayFix(err error, inUserNS bool) string {
	switch {
	case errors.Is(err, unix.ENODEV):
		return "sudo modprobe overlay"
	case inUserNS && (errors.Is(err, unix.EPERM) || errors.Is(err, unix.EACCES)):
		return "the kernel lets no user namespace mount here: see the user namespaces line (AppArmor, sysctls, a container's seccomp); or run as root"
	case inUserNS && errors.Is(err, unix.EINVAL):
		return "needs Linux 5.11+ and a store whose filesystem keeps user.* xattrs: upgrade, or move the store (--root DIR or INCARNATE_ROOT)"
	}
	return "put the store on a local disk filesystem such as ext4, xfs or btrfs (--root DIR or INCARNATE_ROOT)"
}

// probeTarget is what the overlay probe runs once its root is built. The
// probe's root is empty, so the target is never found: that exec failure
// is how the probe learns every setup op succeeded, with no binary inside.
const probeTarget = "/incarnate-doctor-probe"

// probeOverlay mounts an overlay on an empty lower dir in a throwaway
// directory under tmp and pivots into it, through the same sandbox ops a
// session uses, then removes the directory.
func probeOverlay(tmp string, inUserNS bool) error {
	dir, err := os.MkdirTemp(tmp, "doctor-")
	if err != nil {
		return err
	}
	err = runOverlayProbe(dir, inUserNS)
	// RemoveTree, not RemoveAll: overlayfs leaves a mode-000 work/work,
	// and a probe mount that leaked must be refused, not emptied.
	if rmErr := fsutil.RemoveTree(dir); err == nil && rmErr != nil {
		return fmt.Errorf("clean up the probe: %w", rmErr)
	}
	return err
}

func runOverlayProbe(dir string, inUserNS bool) error {
	p := func(name string) string { return filepath.Join(dir, name) }
	for _, d := range []string{"lower", "upper", "work", "root"} {
		if err := os.Mkdir(p(d), 0o755); err != nil {
			return err
		}
	}
	cmd := &sandbox.Cmd{
		Spec: sandbox.Spec{
			Root: []sandbox.Op{
				sandbox.MakeRslave{},
				sandbox.MountOverlay{Target: p("root"), Lowers: []string{p("lower")}, Upper: p("upper"), Work: p("work"), UserXattr: inUserNS},
				sandbox.NewPivotRoot(p("root")),
			},
			Process: []sandbox.Op{},
			Argv:    []string{probeTarget},
		},
		Cloneflags: sandbox.Namespaces,
		Rootless:   inUserNS,
	}
	_, err := cmd.Run()
	var oe *sandbox.OpError
	if errors.As(err, &oe) && oe.Op == "exec" && oe.Path == probeTarget {
		return nil
	}
	return err
}

// --- store

func checkStore(e *doctorEnv) result {
	if e.store == "" {
		return bad(fail, fmt.Sprintf("cannot open the store: %v", e.storeErr),
			"pass --root DIR, or set INCARNATE_ROOT, to a directory you can write")
	}
	var sfs unix.Statfs_t
	if err := unix.Statfs(e.store, &sfs); err != nil {
		return bad(fail, fmt.Sprintf("statfs %q: %v", e.store, err), "")
	}
	where := fmt.Sprintf("%s on %s", e.store, fsName(sfs.Type))
	moveIt := "put the store on a local disk filesystem such as ext4, xfs or btrfs (--root DIR or INCARNATE_ROOT)"
	switch int64(sfs.Type) {
	case unix.OVERLAYFS_SUPER_MAGIC, unix.NFS_SUPER_MAGIC, unix.CIFS_SUPER_MAGIC, unix.SMB2_SUPER_MAGIC:
		return bad(fail, where+": cannot hold an overlay upper dir", moveIt)
	}
	xattr := xattrName(e.root)
	if err := probeStoreFiles(filepath.Join(e.store, "tmp"), xattr); err != nil {
		return bad(fail, fmt.Sprintf("%s: %v", where, err), moveIt)
	}
	if int64(sfs.Type) == unix.TMPFS_MAGIC {
		return bad(warn, where+": it works, but sessions are lost at reboot", moveIt)
	}
	return good("%s: d_type and %s.* xattrs work", where, strings.Split(xattr, ".")[0])
}

// xattrName is the attribute the probe sets: overlay keeps its metadata in
// trusted.* xattrs when mounted by root, in user.* ones (userxattr) when
// mounted in a user namespace.
func xattrName(root bool) string {
	if root {
		return "trusted.incarnate-doctor"
	}
	return "user.incarnate-doctor"
}

var fsNames = map[int64]string{
	unix.EXT4_SUPER_MAGIC: "ext4", unix.XFS_SUPER_MAGIC: "xfs", unix.BTRFS_SUPER_MAGIC: "btrfs",
	unix.TMPFS_MAGIC: "tmpfs", unix.OVERLAYFS_SUPER_MAGIC: "overlayfs", unix.NFS_SUPER_MAGIC: "nfs",
	unix.CIFS_SUPER_MAGIC: "cifs", unix.SMB2_SUPER_MAGIC: "smb", unix.F2FS_SUPER_MAGIC: "f2fs",
	unix.FUSE_SUPER_MAGIC: "fuse", 0x2fc12fc1: "zfs",
}

func fsName(t int64) string {
	if n, ok := fsNames[t]; ok {
		return n
	}
	return fmt.Sprintf("filesystem %#x", t)
}

// probeStoreFiles checks, in a throwaway directory under tmp, the two
// things overlayfs needs of its upper dir's filesystem: file types in
// directory entries (d_type), and the xattrs it keeps its metadata in.
func probeStoreFiles(tmp, xattr string) error {
	dir, err := os.MkdirTemp(tmp, "doctor-")
	if err != nil {
		return err
	}
	defer fsutil.RemoveTree(dir)
	f := filepath.Join(dir, "probe")
	if err := os.WriteFile(f, nil, 0o600); err != nil {
		return err
	}
	if err := checkDType(dir, "probe"); err != nil {
		return err
	}
	if err := unix.Setxattr(f, xattr, []byte("1"), 0); err != nil {
		return fmt.Errorf("cannot set xattr %s on %q: %w", xattr, f, err)
	}
	if err := unix.Removexattr(f, xattr); err != nil {
		return fmt.Errorf("cannot remove xattr %s from %q: %w", xattr, f, err)
	}
	return nil
}

// checkDType reads dir's entries raw, since os.ReadDir quietly stats an
// entry whose type the filesystem left unknown.
func checkDType(dir, name string) error {
	fd, err := unix.Open(dir, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return &os.PathError{Op: "open", Path: dir, Err: err}
	}
	defer unix.Close(fd)
	buf := make([]byte, 8192)
	n, err := unix.ReadDirent(fd, buf)
	if err != nil {
		return &os.PathError{Op: "getdents64", Path: dir, Err: err}
	}
	typ, found := direntType(buf[:n], name)
	switch {
	case !found:
		return fmt.Errorf("%q not listed in %q", name, dir)
	case typ == unix.DT_UNKNOWN:
		return fmt.Errorf("the filesystem does not record file types in directory entries (d_type), which overlayfs needs")
	}
	return nil
}

// direntType finds name in a getdents64 buffer (struct linux_dirent64:
// inode u64, offset s64, record length u16, type u8, name).
func direntType(buf []byte, name string) (byte, bool) {
	for len(buf) >= 19 {
		reclen := int(binary.NativeEndian.Uint16(buf[16:18]))
		if reclen < 19 || reclen > len(buf) {
			break
		}
		if unix.ByteSliceToString(buf[19:reclen]) == name {
			return buf[18], true
		}
		buf = buf[reclen:]
	}
	return 0, false
}

// --- sub-ids and the host base

func checkSubIDs(e *doctorEnv) result {
	if e.root {
		return good("not used when running as root")
	}
	var missing []string
	ids, err := sandbox.FindSubIDs()
	if err != nil {
		missing = append(missing, err.Error())
	}
	if _, err := sandbox.SubIDTools(); err != nil {
		missing = append(missing, err.Error())
	}
	if len(missing) > 0 {
		return bad(warn, strings.Join(missing, "; ")+" (sessions map only you: a base with several users, like Debian's _apt, cannot install packages)",
			"sudo usermod --add-subuids FIRST-LAST --add-subgids FIRST-LAST $USER (a range no one else has), and install newuidmap (Debian: uidmap)")
	}
	if os.Getenv(sandbox.NoSubIDsEnv) == "0" {
		return bad(warn, "sub-id ranges are there but turned off by "+sandbox.NoSubIDsEnv+"=0", "unset "+sandbox.NoSubIDsEnv)
	}
	return good("%s's uids %d-%d and gids %d-%d are ids 1 and up in sessions (through newuidmap/newgidmap)",
		ids.User, ids.UID, ids.UID+ids.UIDs-1, ids.GID, ids.GID+ids.GIDs-1)
}

func checkHostBase(e *doctorEnv) result {
	if e.root {
		return good("the host base (/) can be used, submounts included, on the kernel's overlay")
	}
	version, err := session.FuseOverlayVersion()
	if err != nil {
		return bad(fail, "the host base cannot be used: "+err.Error(), "install fuse-overlayfs ≥ 1.10 and let users open /dev/fuse; or import a base (incarnate base import NAME DIR), or run as root")
	}
	limits := "files that only root may read (/etc/shadow) stay unreadable inside, and no device node can be made"
	if ids, err := sandbox.FindSubIDs(); err != nil || ids.UIDs < 65535 {
		limits += "; without a sub-id range of 65535 or more every file is root's inside and apt downloads as root"
	}
	limits += "; outside your home, file work goes through the FUSE daemon, up to twice as slow as the kernel's overlay (make bench: host-base workload)"
	return good("the host base works through fuse-overlayfs %s (with a home of your own files on the kernel's overlay); %s", version, limits)
}
