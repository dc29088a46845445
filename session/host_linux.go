package session

import (
	"bufio"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"

	"golang.org/x/sys/unix"

	"github.com/incarnate-dev/incarnate/layers"
	"github.com/incarnate-dev/incarnate/sandbox"
)

// The host base is the machine's own "/" with everything mounted below
// it: a /home partition, /boot, a /var disk and binds are part of it, as
// a user sees them on the host. What the sandbox makes itself (/proc,
// /dev, /sys, a fresh /run) stays its own, and the store and the runtime
// dir are hidden under empty tmpfs mounts.
//
// As root, the kernel's overlay serves it: one overlay of "/" and one
// more on each submount, whose upper dir is the matching directory of
// the session's upper dir, so its changes are there like any other. An
// ordinary user's session is served by fuse-overlayfs (see
// sandbox/fuse_linux.go), which walks into submounts itself.

// ErrNoFuse: an ordinary user's host base needs fuse-overlayfs and
// /dev/fuse, and one of them is missing.
var ErrNoFuse = errors.New("an ordinary user's host base needs fuse-overlayfs")

// hasHost reports whether base b stands on the host's "/".
func hasHost(b *layers.Base) bool { return slices.Contains(b.LayerIDs(), layers.HostLayer) }

// needsFuse reports whether a session on base b is served by
// fuse-overlayfs: always for an ordinary user on the host, and for root
// on a base committed on the host while the store is on the host's root
// file system, as overlayfs refuses a lower dir inside another one
// ("overlapping lowerdir path"), and every layer there is inside "/".
func (s *Store) needsFuse(b *layers.Base) bool {
	if !hasHost(b) {
		return false
	}
	return sandbox.Rootless() || (!b.Builtin() && sameDevice(s.Root, "/"))
}

// fuseProgram finds fuse-overlayfs and checks that /dev/fuse opens, with
// what to do when either fails.
func fuseProgram() (string, error) {
	prog, err := exec.LookPath("fuse-overlayfs")
	if err != nil {
		return "", fmt.Errorf("%w (≥ 1.10), which is not installed: install it (Debian: sudo apt-get install fuse-overlayfs), or run incarnate as root", ErrNoFuse)
	}
	f, err := os.OpenFile("/dev/fuse", os.O_RDWR, 0)
	if err != nil {
		return "", fmt.Errorf("%w and /dev/fuse, which you cannot open (%v): let users open it (sudo chmod 0666 /dev/fuse, as desktop systems ship it), or run incarnate as root", ErrNoFuse, errors.Unwrap(err))
	}
	f.Close()
	return prog, nil
}

// FuseOverlayVersion is the version of the fuse-overlayfs an ordinary
// user's host base would use, or why it cannot.
func FuseOverlayVersion() (string, error) {
	prog, err := fuseProgram()
	if err != nil {
		return "", err
	}
	out, err := exec.Command(prog, "--version").CombinedOutput()
	if err != nil {
		return "", fmt.Errorf("%s --version: %v", prog, err)
	}
	for _, line := range strings.Split(string(out), "\n") {
		if v, ok := strings.CutPrefix(strings.TrimSpace(line), "fuse-overlayfs: version "); ok {
			var major, minor int
			if _, err := fmt.Sscanf(v, "%d.%d", &major, &minor); err != nil || major < 1 || (major == 1 && minor < 10) {
				return "", fmt.Errorf("fuse-overlayfs %s is too old: ≥ 1.10 maps owners as a session needs", v)
			}
			return v, nil
		}
	}
	return "", fmt.Errorf("%s --version says no version", prog)
}

// HostBaseProblem says why an ordinary user's host base cannot be used
// on this machine, or nil.
func HostBaseProblem() error {
	_, err := fuseProgram()
	return err
}

// hostRootOps are the ops that mount session m's root on a base that
// stands on the host, up to the kernel file systems.
func (s *Store) hostRootOps(m *Meta, lowers []string, ids *IDRange) ([]sandbox.Op, error) {
	idmapped := ids != nil
	dir := s.Dir(m.Name)
	root, upper := filepath.Join(dir, "root"), filepath.Join(dir, "upper")
	if m.Fuse {
		prog, err := fuseProgram()
		if err != nil {
			return nil, err
		}
		fuse := sandbox.MountFuseOverlay{Target: root, Lowers: lowers, Upper: upper, Work: filepath.Join(dir, "work"), Program: prog}
		if ids != nil {
			fuse.Shift = ids.UID
		}
		ops := []sandbox.Op{fuse}
		for _, d := range m.KernelDirs {
			if err := mkdirBeneath(upper, d, "/"); err != nil {
				return nil, err
			}
			if err := mkdirBeneath(filepath.Join(dir, "work"), "/k"); err != nil {
				return nil, err
			}
			// Optional: a session whose home cannot be mounted so (a
			// mount appeared below it) is served by fuse-overlayfs there,
			// which reads the kernel's markers too.
			ops = append(ops, sandbox.MountOverlay{
				Target: root + d, Lowers: []string{d}, Upper: upper + d, Work: filepath.Join(dir, "work", "k"),
				UserXattr: true, Optional: true,
			})
		}
		if conf, ok := s.aptConf(m); ok {
			ops = append(ops, sandbox.Bind{Src: conf, Dst: root + aptConfPath})
		}
		return ops, nil
	}
	ops := []sandbox.Op{sandbox.MountOverlay{
		Target: root, Lowers: lowers, Upper: upper, Work: filepath.Join(dir, "work"), IDMap: idmapped,
	}}
	subs, err := s.submounts()
	if err != nil {
		return nil, err
	}
	for i, p := range subs {
		if err := mkdirBeneath(upper, p, "/"); err != nil {
			Notice(fmt.Sprintf("session %s: %s is not shown (its directory in the upper dir: %v)", m.Name, p, err))
			continue
		}
		work := filepath.Join("sub", fmt.Sprint(i))
		if err := mkdirBeneath(filepath.Join(dir, "work"), "/"+work); err != nil {
			return nil, err
		}
		sub := make([]string, 0, len(lowers))
		for _, l := range lowers {
			sub = append(sub, filepath.Join(l, p))
		}
		ops = append(ops, sandbox.MountOverlay{
			Target: root + p, Lowers: existingDirs(sub), Upper: upper + p, Work: filepath.Join(dir, "work", work),
			Home: dir, IDMap: idmapped, Optional: true,
			Note: fmt.Sprintf("session %s: %s shows the directory beneath it, not the file system mounted there, which the kernel's overlay refused", m.Name, p),
		})
	}
	return ops, nil
}

// hiddenOps hide, in a root on the host, what a session must not reach:
// the host's /run (sockets of every service and user), the store, and
// the runtime dir with the keepers' sockets.
func (s *Store) hiddenOps(root string) []sandbox.Op {
	ops := []sandbox.Op{sandbox.MountTmpfs{Target: root + "/run", Mode: 0o755}}
	hide := []string{s.Root}
	if sock, err := s.socketPath("x"); err == nil {
		hide = append(hide, filepath.Dir(sock))
	}
	for _, h := range hide {
		// Where the host resolves it, never where the session's own
		// symlinks would: a session can replace a symlink on the way
		// to the store in its view, and the store would show at its
		// real path.
		if real, err := filepath.EvalSymlinks(h); err == nil {
			h = real
		}
		if h != "/run" && !strings.HasPrefix(h, "/run/") {
			ops = append(ops, sandbox.MountTmpfs{Target: root + h, Mode: 0o700, Hide: true})
		}
	}
	return ops
}

// submounts are the mount points below "/" that the host base shows, a
// parent before what is mounted in it, without the sandbox's own trees
// and what lies in the store.
func (s *Store) submounts() ([]string, error) {
	all, err := mountPointList()
	if err != nil {
		return nil, err
	}
	var out []string
	seen := map[string]bool{}
	for _, p := range all {
		if p == "/" || seen[p] || !s.showsSubmount(p) {
			continue
		}
		seen[p] = true
		out = append(out, p)
	}
	// Parents first, whatever order the table had.
	slices.SortStableFunc(out, func(a, b string) int { return strings.Count(a, "/") - strings.Count(b, "/") })
	return out, nil
}

// mountPointList is every mount point of this mount namespace, as
// /proc/self/mountinfo lists them.
func mountPointList() ([]string, error) {
	f, err := os.Open("/proc/self/mountinfo")
	if err != nil {
		return nil, err
	}
	defer f.Close()
	var out []string
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		if fields := strings.Fields(sc.Text()); len(fields) >= 5 {
			out = append(out, unescapeMount(fields[4]))
		}
	}
	return out, sc.Err()
}

// showsSubmount reports whether the host base shows the mount at p.
func (s *Store) showsSubmount(p string) bool {
	for _, own := range []string{"/proc", "/dev", "/sys", "/run", s.Root} {
		if p == own || strings.HasPrefix(p, own+"/") {
			return false
		}
	}
	fi, err := os.Stat(p)
	return err == nil && fi.IsDir()
}

// unescapeMount undoes mountinfo's octal escapes (\040 for a space).
func unescapeMount(p string) string {
	if !strings.Contains(p, `\`) {
		return p
	}
	var b strings.Builder
	for i := 0; i < len(p); i++ {
		if p[i] == '\\' && i+3 < len(p) {
			var c byte
			if _, err := fmt.Sscanf(p[i+1:i+4], "%03o", &c); err == nil {
				b.WriteByte(c)
				i += 3
				continue
			}
		}
		b.WriteByte(p[i])
	}
	return b.String()
}

// existingDirs keeps the dirs that exist: a layer committed on the host
// base holds a submount's directory only if the session changed in it.
func existingDirs(dirs []string) []string {
	var out []string
	for _, d := range dirs {
		if fi, err := os.Stat(d); err == nil && fi.IsDir() {
			out = append(out, d)
		}
	}
	return out
}

// mkdirBeneath makes directory p (absolute, as the session sees it) and
// its parents inside dir, never following a symlink the session left
// there, and marks what it makes as made to mount on. With like set,
// each gets the mode and owner of its namesake under like, so that it
// is no change of the session's.
func mkdirBeneath(dir, p string, like ...string) error {
	fd, err := unix.Open(dir, unix.O_PATH|unix.O_DIRECTORY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
	if err != nil {
		return err
	}
	for _, name := range strings.Split(strings.Trim(p, "/"), "/") {
		if name == "" {
			continue // p is "/"
		}
		next, err := unix.Openat2(fd, name, &unix.OpenHow{Flags: unix.O_PATH | unix.O_DIRECTORY | unix.O_CLOEXEC, Resolve: unix.RESOLVE_BENEATH | unix.RESOLVE_NO_SYMLINKS})
		if errors.Is(err, unix.ENOENT) {
			if err = unix.Mkdirat(fd, name, 0o755); err == nil || errors.Is(err, unix.EEXIST) {
				next, err = unix.Openat2(fd, name, &unix.OpenHow{Flags: unix.O_RDONLY | unix.O_DIRECTORY | unix.O_CLOEXEC, Resolve: unix.RESOLVE_BENEATH | unix.RESOLVE_NO_SYMLINKS})
				if err == nil {
					_ = unix.Fsetxattr(next, sandbox.MountpointXattr, []byte("1"), 0)
					copyOwnMeta(next, like, p, name)
				}
			}
		}
		unix.Close(fd)
		if err != nil {
			return err
		}
		fd = next
	}
	return unix.Close(fd)
}

// copyOwnMeta gives directory fd the mode and owner of the directory
// that has the path of p up to name in the first of the trees like (a
// base's lower dirs, top first) that has it, as overlay's copy-up would:
// a /tmp made here to mount below it must stay 1777.
func copyOwnMeta(fd int, like []string, p, name string) {
	i := strings.Index(p+"/", "/"+name+"/")
	if i < 0 {
		return
	}
	for _, l := range like {
		var st unix.Stat_t
		if unix.Lstat(filepath.Join(l, p[:i+1+len(name)]), &st) == nil {
			_ = unix.Fchmod(fd, st.Mode&0o7777)
			_ = unix.Fchown(fd, int(st.Uid), int(st.Gid))
			return
		}
	}
}

// aptConfPath is where a session without sub-ids is told that apt cannot
// drop to its _apt user: with only the user mapped there is no such user,
// and setgroups is refused, so every download would fail.
const aptConfPath = "/etc/apt/apt.conf.d/00incarnate-no-apt-user"

// aptConf writes the file bound at aptConfPath for session m, when the
// session has no sub-ids and the host has apt.
func (s *Store) aptConf(m *Meta) (string, bool) {
	if !m.UserXattr || sandbox.FuseShowsOwners() {
		return "", false
	}
	if fi, err := os.Stat(filepath.Dir(aptConfPath)); err != nil || !fi.IsDir() {
		return "", false
	}
	conf := filepath.Join(s.Dir(m.Name), "apt.conf")
	const text = "// Made by incarnate: this session maps no user but root (no sub-ids),\n// so apt runs its downloads as root instead of _apt.\nAPT::Sandbox::User \"root\";\n"
	if err := os.WriteFile(conf, []byte(text), 0o644); err != nil {
		return "", false
	}
	return conf, true
}

// kernelDirs are the directories of an ordinary user's host base that
// the kernel's overlay serves, beneath fuse-overlayfs: the user's home,
// where the work is, when its files are the user's (the kernel overlay
// copies up only files whose owner the namespace maps) and nothing is
// mounted below it (it refuses a lower with locked submounts). It runs
// several times as fast there as the FUSE daemon (see make bench).
func kernelDirs() []string {
	home := os.Getenv("HOME")
	if home == "" || !filepath.IsAbs(home) || filepath.Clean(home) != home || home == "/" {
		return nil
	}
	var st unix.Stat_t
	if unix.Lstat(home, &st) != nil || st.Mode&unix.S_IFMT != unix.S_IFDIR || int(st.Uid) != os.Geteuid() {
		return nil
	}
	mounts, err := mountPointList()
	if err != nil {
		return nil
	}
	for _, m := range mounts {
		if strings.HasPrefix(m, home+"/") {
			return nil
		}
	}
	return []string{home}
}
