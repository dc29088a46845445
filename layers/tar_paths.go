package layers

import (
	"errors"
	"fmt"
	"strings"

	"golang.org/x/sys/unix"
)

// entryPath turns an archive member name into a path relative to the
// destination, "" for the destination itself. A leading "/" or "./" is
// dropped, as tar does ("docker export" and some rootfs tarballs use
// absolute names); a ".." component anywhere is refused, even one that
// would stay inside after cleaning, since no honest rootfs needs one.
func entryPath(name string) (string, error) {
	parts := strings.Split(name, "/")
	out := parts[:0]
	for _, p := range parts {
		switch p {
		case "", ".":
		case "..":
			return "", unsafeEntry(name, `it has a ".." component`)
		default:
			out = append(out, p)
		}
	}
	return strings.Join(out, "/"), nil
}

func unsafeEntry(name, why string) error {
	return fmt.Errorf("archive entry %q: %w: %s", name, ErrUnsafeEntry, why)
}

// splitPath splits rel into its directory and last component.
func splitPath(rel string) (dir, base string) {
	if i := strings.LastIndexByte(rel, '/'); i >= 0 {
		return rel[:i], rel[i+1:]
	}
	return "", rel
}

// beneath resolves only below the directory fd it starts from and never
// follows a symlink: an entry written through a symlink unpacked earlier
// ("link -> /etc", then "link/passwd") fails with ELOOP instead of
// landing in /etc, whatever the symlink points at.
const beneath = unix.RESOLVE_BENEATH | unix.RESOLVE_NO_SYMLINKS | unix.RESOLVE_NO_MAGICLINKS | unix.RESOLVE_NO_XDEV

// openBeneath opens rel below root with openat2, never following a
// symlink and never leaving root.
func openBeneath(root int, rel string, flags uint64) (int, error) {
	if rel == "" {
		rel = "."
	}
	for {
		fd, err := unix.Openat2(root, rel, &unix.OpenHow{Flags: flags | unix.O_CLOEXEC, Resolve: beneath})
		if err != unix.EINTR && err != unix.EAGAIN {
			return fd, err
		}
	}
}

// resolveErr says why an entry's directory could not be opened, naming
// the entry; the safety refusals wrap ErrUnsafeEntry.
func resolveErr(name, dir string, err error) error {
	switch {
	case errors.Is(err, unix.ELOOP):
		return unsafeEntry(name, fmt.Sprintf("%q is or goes through a symlink, and nothing is written through one", dir))
	case errors.Is(err, unix.EXDEV):
		return unsafeEntry(name, fmt.Sprintf("%q leads outside the destination", dir))
	case errors.Is(err, unix.ENOTDIR):
		return fmt.Errorf("archive entry %q: %q is not a directory", name, dir)
	}
	return fmt.Errorf("archive entry %q: open %q: %w", name, dir, err)
}

// mkdirBeneath opens directory rel below root, creating what is missing
// (mode 0755, as tar does for parents an archive does not list) one
// component at a time, each opened without following symlinks.
func mkdirBeneath(root int, rel string) (int, error) {
	fd, err := openBeneath(root, rel, unix.O_PATH|unix.O_DIRECTORY)
	if err != unix.ENOENT {
		return fd, err
	}
	cur, err := unix.Dup(root)
	if err != nil {
		return -1, err
	}
	for _, comp := range strings.Split(rel, "/") {
		next, err := openBeneath(cur, comp, unix.O_PATH|unix.O_DIRECTORY)
		if err == unix.ENOENT {
			if err = unix.Mkdirat(cur, comp, 0o755); err == nil || err == unix.EEXIST {
				next, err = openBeneath(cur, comp, unix.O_PATH|unix.O_DIRECTORY)
			}
		}
		unix.Close(cur)
		if err != nil {
			return -1, err
		}
		cur = next
	}
	return cur, nil
}
