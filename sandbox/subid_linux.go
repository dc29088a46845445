package sandbox

import (
	"bufio"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"syscall"

	"golang.org/x/sys/unix"
)

// An ordinary user's session holds only the user's own files unless the
// user namespace around it maps more ids: apt drops to _apt (uid 42),
// dpkg chowns to a dozen system users. With sub-id ranges in /etc/subuid
// and /etc/subgid, incarnate re-executes itself once, at the start of a
// command, as root of a user namespace mapping the caller to 0 and the
// ranges to 1 and up. Everything after that (keeper, overlay, purge,
// clone, diff) runs there as it would for root, except that it is
// rootless: overlay xattrs in the user.* namespace, no device nodes, no
// host base.

// userNS describes the user namespace this process runs in.
type userNS struct {
	child   bool // not the initial user namespace
	hostUID int  // the host uid that root inside maps to, when child
}

var (
	nsOnce sync.Once
	ns     userNS
)

func currentNS() userNS {
	nsOnce.Do(func() {
		ns = userNS{hostUID: os.Geteuid()}
		b, err := os.ReadFile("/proc/self/uid_map")
		if err != nil {
			return
		}
		for _, line := range strings.Split(strings.TrimSpace(string(b)), "\n") {
			f := strings.Fields(line)
			if len(f) != 3 {
				continue
			}
			if !(f[0] == "0" && f[1] == "0" && f[2] == "4294967295") {
				ns.child = true
			}
			if f[0] == "0" {
				ns.hostUID, _ = strconv.Atoi(f[1])
			}
		}
	})
	return ns
}

// Rootless reports whether incarnate runs without the machine's root:
// as an ordinary user, or as root of a user namespace of its own.
func Rootless() bool { return os.Geteuid() != 0 || currentNS().child }

// HostUID is the caller's uid on the host, also from inside a user
// namespace made by ReexecWithSubIDs.
func HostUID() int {
	if n := currentNS(); n.child && os.Geteuid() == 0 {
		return n.hostUID
	}
	return os.Geteuid()
}

// SubIDs is an ordinary user's ranges of subordinate ids.
type SubIDs struct {
	User                 string
	UID, UIDs, GID, GIDs int // first id and count of each range
}

// FindSubIDs returns the caller's first ranges in /etc/subuid and
// /etc/subgid (both keyed by user name or uid, as newuidmap and
// newgidmap read them), or an error saying what is missing.
func FindSubIDs() (*SubIDs, error) {
	uid := os.Getuid()
	s := &SubIDs{User: userName(uid)}
	var err error
	if s.UID, s.UIDs, err = subRange("/etc/subuid", s.User, uid); err != nil {
		return nil, err
	}
	if s.GID, s.GIDs, err = subRange("/etc/subgid", s.User, uid); err != nil {
		return nil, err
	}
	return s, nil
}

// userName reads uid's name from /etc/passwd by hand (os/user would link
// the C library in and slow every start), or gives the number.
func userName(uid int) string {
	f, err := os.Open("/etc/passwd")
	if err != nil {
		return strconv.Itoa(uid)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		fs := strings.Split(sc.Text(), ":")
		if len(fs) > 2 && fs[2] == strconv.Itoa(uid) {
			return fs[0]
		}
	}
	return strconv.Itoa(uid)
}

// subRange finds the first "owner:start:count" line of file for name or id.
func subRange(file, name string, id int) (int, int, error) {
	f, err := os.Open(file)
	if err != nil {
		return 0, 0, fmt.Errorf("no range for %s: %w", name, err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		fs := strings.Split(strings.TrimSpace(sc.Text()), ":")
		if len(fs) != 3 || (fs[0] != name && fs[0] != strconv.Itoa(id)) {
			continue
		}
		start, err1 := strconv.Atoi(fs[1])
		count, err2 := strconv.Atoi(fs[2])
		if err1 == nil && err2 == nil && count > 0 {
			return start, count, nil
		}
	}
	return 0, 0, fmt.Errorf("no range for %q (uid %d) in %s", name, id, file)
}

// SubIDTools returns the paths of unshare (util-linux) and newuidmap and
// newgidmap (shadow's uidmap package), or an error naming what is missing.
func SubIDTools() (string, error) {
	unshare, err := exec.LookPath("unshare")
	if err != nil {
		return "", errors.New("unshare (util-linux) is not installed")
	}
	for _, tool := range []string{"newuidmap", "newgidmap"} {
		path, err := exec.LookPath(tool)
		if err != nil {
			return "", fmt.Errorf("%s is not installed (Debian: apt-get install uidmap)", tool)
		}
		if !privilegedTool(path) {
			return "", fmt.Errorf("%s is neither setuid root nor given file capabilities, so it cannot write the maps (reinstall it)", path)
		}
	}
	return unshare, nil
}

// privilegedTool reports whether the program at path runs with privileges
// its caller lacks: setuid root, or file capabilities.
func privilegedTool(path string) bool {
	var st unix.Stat_t
	if unix.Stat(path, &st) != nil {
		return false
	}
	if st.Mode&unix.S_ISUID != 0 && st.Uid == 0 {
		return true
	}
	_, err := unix.Getxattr(path, "security.capability", nil)
	return err == nil
}

// NoSubIDsEnv, set to 0, keeps an ordinary user's sessions to the
// user's own id even where sub-id ranges exist.
const NoSubIDsEnv = "INCARNATE_SUBIDS"

// ReexecWithSubIDs replaces the process with itself (argv) as root of a
// new user namespace mapping the caller to 0 and its sub-id ranges to 1
// and up. It returns, doing nothing, where that does not apply: as root,
// inside such a namespace already, with INCARNATE_SUBIDS=0, or without
// ranges or tools.
func ReexecWithSubIDs(argv []string) error {
	unshare, args, err := subIDsCommand(argv)
	if unshare == "" {
		return err
	}
	return syscall.Exec(unshare, args, os.Environ())
}

// SubIDsPending reports whether ReexecWithSubIDs would re-execute this
// process.
func SubIDsPending() bool {
	unshare, _, _ := subIDsCommand(nil)
	return unshare != ""
}

// subIDsCommand is the program and command line ReexecWithSubIDs runs,
// or "" where it does not apply.
func subIDsCommand(argv []string) (string, []string, error) {
	if os.Geteuid() == 0 || currentNS().child || os.Getenv(NoSubIDsEnv) == "0" {
		return "", nil, nil
	}
	ids, err := FindSubIDs()
	if err != nil {
		return "", nil, nil
	}
	unshare, err := SubIDTools()
	if err != nil {
		return "", nil, nil
	}
	self, err := os.Executable()
	if err != nil {
		return "", nil, err
	}
	args := append([]string{"unshare", "--map-root-user",
		fmt.Sprintf("--map-users=%d,1,%d", ids.UID, ids.UIDs),
		fmt.Sprintf("--map-groups=%d,1,%d", ids.GID, ids.GIDs),
		"--", self}, argv...)
	return unshare, args, nil
}
