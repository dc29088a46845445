package session

import (
	"errors"
	"maps"
	"os"
	"path/filepath"
	"slices"

	"golang.org/x/sys/unix"

	"github.com/incarnate-dev/incarnate/internal/fsutil"
	"github.com/incarnate-dev/incarnate/sandbox"
)

// fuse-overlayfs copies a file up by reading it, as the user. The host
// has files no ordinary user may read, and package managers need some:
// dpkg and apt lock files (empty, root's, mode 0640), /etc/.pwd.lock,
// /root (root's home inside, 0700 on the host),
// apt's partial dirs (_apt's, 0700). Copied up, they would fail the
// write with EACCES. Their content is known without reading them, as
// they are empty, so before the session starts each is made in the upper
// dir as the copy-up would make it (a stub), and an unreadable directory
// as an empty opaque one (its entries cannot be read anyway). Stubs are
// recorded in the session's directory (the session could put a mark of
// its own on any file), and diff leaves out one that is still as made.

// stubXattr marks an entry made as a stub.
const stubXattr = "user.incarnate.stub"

// stubDirs are where the stubs are looked for: what dpkg, apt and the
// shadow tools lock or write through. A few directories, each read in a
// fraction of a millisecond.
var stubDirs = []string{
	"/", "/etc", "/var/lib/dpkg", "/var/lib/dpkg/triggers", "/var/lib/dpkg/updates",
	"/var/lib/apt", "/var/lib/apt/lists", "/var/cache/apt", "/var/cache/apt/archives",
	"/var/cache/debconf", "/var/log/apt",
}

// makeStubs makes the stubs session m's upper dir lacks, where no layer
// committed on the host has the entry already.
func (s *Store) makeStubs(m *Meta) {
	upper := s.upperDir(m.Name)
	var above, made []string
	if b, err := s.Layers.Get(m.Base); err == nil {
		for _, d := range s.Layers.LowerDirs(b) {
			if d != "/" {
				above = append(above, d)
			}
		}
	}
	for _, dir := range stubDirs {
		ents, err := os.ReadDir(dir)
		if err != nil {
			continue
		}
		for _, e := range ents {
			p := filepath.Join(dir, e.Name())
			if unix.Access(p, unix.R_OK) == nil || inAny(above, p) {
				continue
			}
			var st unix.Stat_t
			if unix.Lstat(p, &st) != nil {
				continue
			}
			switch {
			case st.Mode&unix.S_IFMT == unix.S_IFREG && st.Size == 0:
			case st.Mode&unix.S_IFMT == unix.S_IFDIR && unix.Access(p, unix.X_OK) != nil:
			default:
				continue // not known without reading it: left to fail
			}
			if makeStub(upper, p, &st) == nil {
				made = append(made, p)
			}
		}
	}
	if len(made) > 0 {
		_ = s.recordStubs(m.Name, made)
	}
}

func (s *Store) stubsPath(name string) string { return filepath.Join(s.Dir(name), "stubs.json") }

// recordStubs adds made to the stubs recorded for session name.
func (s *Store) recordStubs(name string, made []string) error {
	all := s.stubsOf(name)
	for _, p := range made {
		all[p] = true
	}
	return fsutil.WriteJSON(s.stubsPath(name), slices.Sorted(maps.Keys(all)))
}

// copyStubs gives the session being made in dir session src's record.
func (s *Store) copyStubs(src, dir string) error {
	stubs := s.stubsOf(src)
	if len(stubs) == 0 {
		return nil
	}
	return fsutil.WriteJSON(filepath.Join(dir, "stubs.json"), slices.Sorted(maps.Keys(stubs)))
}

// stubsOf are the paths where stubs were made in session name.
func (s *Store) stubsOf(name string) map[string]bool {
	var list []string
	_ = fsutil.ReadJSON(s.stubsPath(name), &list)
	set := make(map[string]bool, len(list))
	for _, p := range list {
		set[p] = true
	}
	return set
}

// inAny reports whether any of dirs holds path p, or hides it.
func inAny(dirs []string, p string) bool {
	for _, d := range dirs {
		if _, err := os.Lstat(d + p); err == nil {
			return true
		}
	}
	return false
}

// makeStub makes p (st) in upper, with its parents as the copy-up makes
// them, unless upper has p or hides it already.
func makeStub(upper, p string, st *unix.Stat_t) error {
	if err := mkdirBeneath(upper, filepath.Dir(p), "/"); err != nil {
		return err
	}
	dfd, err := unix.Openat2(unix.AT_FDCWD, upper+filepath.Dir(p), &unix.OpenHow{
		Flags: unix.O_PATH | unix.O_DIRECTORY | unix.O_CLOEXEC, Resolve: unix.RESOLVE_NO_SYMLINKS})
	if err != nil {
		return err
	}
	defer unix.Close(dfd)
	name := filepath.Base(p)
	var fd int
	if st.Mode&unix.S_IFMT == unix.S_IFDIR {
		if err = unix.Mkdirat(dfd, name, 0o700); err == nil {
			fd, err = unix.Openat(dfd, name, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
			if err == nil {
				err = unix.Fsetxattr(fd, fusePrefix+"opaque", []byte("y"), 0)
			}
		}
	} else {
		fd, err = unix.Openat(dfd, name, unix.O_CREAT|unix.O_EXCL|unix.O_WRONLY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0o600)
	}
	if errors.Is(err, unix.EEXIST) {
		return nil // the session has it, or deleted it (a whiteout)
	}
	if err != nil {
		return err
	}
	defer unix.Close(fd)
	_ = unix.Fsetxattr(fd, stubXattr, []byte("1"), 0)
	if sandbox.FuseShowsOwners() {
		// The daemon's copy-up gives the overflow id, where it can.
		_ = unix.Fchown(fd, 65534, 65534)
	}
	_ = unix.Fchmod(fd, st.Mode&0o7777)
	ts := []unix.Timespec{st.Atim, st.Mtim}
	return unix.UtimesNanoAt(dfd, name, ts, unix.AT_SYMLINK_NOFOLLOW)
}

// isStub reports whether entry name of upper directory fd (st, with
// lower lst) is a stub still as it was made: no change of the session's.
func isStub(fd int, name string, st, lst *unix.Stat_t) bool {
	if _, err := unix.Lgetxattr(entryPath(fd, name), stubXattr, nil); err != nil {
		return false
	}
	if st.Mode != lst.Mode || st.Mtim != lst.Mtim {
		return false
	}
	if st.Mode&unix.S_IFMT == unix.S_IFDIR {
		dfd, err := unix.Openat(fd, name, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
		if err != nil {
			return false
		}
		f := os.NewFile(uintptr(dfd), name)
		defer f.Close()
		names, _ := f.Readdirnames(1)
		return len(names) == 0
	}
	return st.Size == 0
}
