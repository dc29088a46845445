package sandbox

import (
	"errors"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"
)

// Everything below the session's root is the session's to shape: a shell
// inside can replace /proc with a symlink to /etc, or /etc/hosts with one
// to /root/.bashrc. Before the pivot such a symlink would resolve against
// the host's root, so every mount point under the root being built is
// resolved as if that root were "/" (openat2 RESOLVE_IN_ROOT), created
// with *at calls that never follow a symlink, and handed to mount(2) as
// /proc/self/fd/N. Nothing a session writes can make incarnate mount on,
// or create, a host path.

// kind says what a mount point must be.
type kind int

const (
	dirKind  kind = iota // a directory, for file systems and directory binds
	fileKind             // a file, for binds of a single file
)

// resolveInRoot opens target (which lies inside root) as an O_PATH fd,
// creating what is missing along the way.
func resolveInRoot(root, target string, k kind) (int, error) {
	return resolveDepth(root, target, k, 0)
}

// maxLinks bounds how many dangling symlinks one mount point may chain
// through, as the kernel's own limit of 40 does for lookups.
const maxLinks = 40

func resolveDepth(root, target string, k kind, depth int) (int, error) {
	if depth > maxLinks {
		return -1, &stepError{step: "resolve", path: target, err: unix.ELOOP}
	}
	rootfd, err := unix.Open(root, unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return -1, &stepError{step: "open", path: root, err: err}
	}
	defer unix.Close(rootfd)
	rel := strings.TrimPrefix(strings.TrimPrefix(target, root), "/")
	if rel == "" {
		return unix.Dup(rootfd)
	}
	parts := strings.Split(rel, "/")
	for i := range parts {
		last := i == len(parts)-1
		sub := strings.Join(parts[:i+1], "/")
		fd, err := openInRoot(rootfd, sub)
		if err == nil {
			if last {
				return fd, nil
			}
			unix.Close(fd)
			continue
		}
		if !errors.Is(err, unix.ENOENT) {
			return -1, &stepError{step: "openat2", path: target, err: err}
		}
		err = createIn(rootfd, parts[:i], parts[i], last && k == fileKind)
		if errors.Is(err, unix.EEXIST) {
			// A dangling symlink: create what it points at, inside root,
			// as a chroot'd mkdir -p would, and go on from there.
			next, lerr := linkTargetInRoot(rootfd, root, parts[:i], parts[i])
			if lerr != nil {
				return -1, &stepError{step: "readlink", path: filepath.Join(root, sub), err: lerr}
			}
			rest := strings.Join(parts[i+1:], "/")
			return resolveDepth(root, filepath.Join(root, next, rest), k, depth+1)
		}
		if err != nil {
			return -1, &stepError{step: "create mount point", path: filepath.Join(root, sub), err: err}
		}
		if last {
			fd, err := openInRoot(rootfd, sub)
			if err != nil {
				return -1, &stepError{step: "openat2", path: target, err: err}
			}
			return fd, nil
		}
	}
	return -1, &stepError{step: "resolve", path: target, err: unix.EINVAL}
}

// linkTargetInRoot reads the symlink name in the (resolved) directory
// parent and returns where it points, as a path relative to root.
func linkTargetInRoot(rootfd int, root string, parent []string, name string) (string, error) {
	dirfd := rootfd
	if len(parent) > 0 {
		fd, err := openInRoot(rootfd, strings.Join(parent, "/"))
		if err != nil {
			return "", err
		}
		defer unix.Close(fd)
		dirfd = fd
	}
	buf := make([]byte, unix.PathMax)
	n, err := unix.Readlinkat(dirfd, name, buf)
	if err != nil {
		return "", err
	}
	link := string(buf[:n])
	if filepath.IsAbs(link) {
		return filepath.Clean(link), nil
	}
	// Relative to where the parent really is, which may itself have been
	// reached through a symlink.
	real, err := os.Readlink("/proc/self/fd/" + strconv.Itoa(dirfd))
	if err != nil {
		return "", err
	}
	rel := strings.TrimPrefix(real, root)
	return filepath.Clean("/" + filepath.Join(rel, link)), nil
}

func openInRoot(rootfd int, rel string) (int, error) {
	return unix.Openat2(rootfd, rel, &unix.OpenHow{
		Flags:   unix.O_PATH | unix.O_CLOEXEC,
		Resolve: unix.RESOLVE_IN_ROOT | unix.RESOLVE_NO_MAGICLINKS,
	})
}

// createIn makes name (a directory, or an empty file) in the directory
// parent resolves to. mkdirat and O_CREAT|O_EXCL never follow a symlink
// at name: a dangling one makes them fail with EEXIST instead.
func createIn(rootfd int, parent []string, name string, file bool) error {
	dirfd := rootfd
	if len(parent) > 0 {
		fd, err := openInRoot(rootfd, strings.Join(parent, "/"))
		if err != nil {
			return err
		}
		defer unix.Close(fd)
		dirfd = fd
	}
	var fd int
	var err error
	if file {
		fd, err = unix.Openat(dirfd, name, unix.O_CREAT|unix.O_EXCL|unix.O_NOFOLLOW|unix.O_WRONLY|unix.O_CLOEXEC, 0o644)
	} else if err = unix.Mkdirat(dirfd, name, 0o755); err == nil {
		fd, err = unix.Openat(dirfd, name, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
	}
	if err != nil {
		return err
	}
	// Best effort: a file system without user.* attributes just shows
	// the mount point as a change.
	_ = unix.Fsetxattr(fd, MountpointXattr, []byte("1"), 0)
	return unix.Close(fd)
}

// MountpointXattr marks what a session's root was given only to mount
// on (an /etc/hosts its base lacks, a --bind target): it lands in the
// session's upper dir, but is no change of the session's own, and diff,
// export and commit leave it out.
const MountpointXattr = "user.incarnate.mountpoint"

// mountpoint returns a path to mount on for target, and a function to
// call once mounted. Targets inside the root being built are resolved
// safely (see above); others, such as the root itself, are the store's
// own paths and are used as they are.
func (st *state) mountpoint(target string, k kind) (string, func(), error) {
	if st.root == "" || !strings.HasPrefix(target, st.root+"/") {
		var err error
		if k == dirKind {
			err = mkdirMountpoint(target)
		} else {
			err = mkfileMountpoint(target)
		}
		return target, func() {}, err
	}
	fd, err := resolveInRoot(st.root, target, k)
	if err != nil {
		return "", nil, err
	}
	return "/proc/self/fd/" + strconv.Itoa(fd), func() { unix.Close(fd) }, nil
}

// existing resolves target inside the root without creating anything. A
// nil done means it does not exist.
func (st *state) existing(target string) (string, func(), error) {
	root := st.root
	if root == "" || !strings.HasPrefix(target, root+"/") {
		root = "/" // a path of the keeper's own, outside the session
	}
	rootfd, err := unix.Open(root, unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return "", nil, &stepError{step: "open", path: root, err: err}
	}
	defer unix.Close(rootfd)
	fd, err := openInRoot(rootfd, strings.TrimPrefix(strings.TrimPrefix(target, strings.TrimSuffix(root, "/")), "/"))
	if errors.Is(err, unix.ENOENT) {
		return "", nil, nil
	}
	if err != nil {
		return "", nil, &stepError{step: "openat2", path: target, err: err}
	}
	return "/proc/self/fd/" + strconv.Itoa(fd), func() { unix.Close(fd) }, nil
}
