package session

import (
	"fmt"
	"hash/fnv"
	"os"
	"path/filepath"

	"golang.org/x/sys/unix"

	"app/incarnate/sandbox"
)

// socketPath is where session name's keeper listens: in the user's
// runtime directory, named by a hash of the store and the session so the
// path stays short (a unix socket path has 108 bytes) whatever the names.
func (s *Store) socketPath(name string) (string, error) {
	s.runtimeOnce.Do(func() { s.runtime, s.runtimeErr = runtimeDir() })
	if s.runtimeErr != nil {
		return "", s.runtimeErr
	}
	dir := s.runtime
	h := fnv.New64a()
	fmt.Fprintf(h, "%s\x00%s", s.Root, name)
	return filepath.Join(dir, fmt.Sprintf("%016x.sock", h.Sum64())), nil
}

// runtimeDir is $XDG_RUNTIME_DIR/incarnate, or a private directory in
// the temp dir when that is unset. It must belong to the user and be
// closed to everyone else: whoever can write there could stand in for a
// keeper.
func runtimeDir() (string, error) {
	base := os.Getenv("XDG_RUNTIME_DIR")
	name := "incarnate"
	if base == "" {
		base, name = os.TempDir(), fmt.Sprintf("incarnate-%d", sandbox.HostUID())
	}
	dir := filepath.Join(base, name)
	if err := os.Mkdir(dir, 0o700); err != nil && !os.IsExist(err) {
		return "", err
	}
	var st unix.Stat_t
	if err := unix.Lstat(dir, &st); err != nil {
		return "", &os.PathError{Op: "lstat", Path: dir, Err: err}
	}
	if st.Mode&unix.S_IFMT != unix.S_IFDIR || int(st.Uid) != os.Geteuid() || st.Mode&0o077 != 0 {
		return "", fmt.Errorf("runtime directory %q is not a private directory of yours; remove it or set XDG_RUNTIME_DIR", dir)
	}
	return dir, nil
}
