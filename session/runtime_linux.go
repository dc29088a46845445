package session

import (
	"errors"
	"fmt"
	"hash/fnv"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"time"

	"golang.org/x/sys/unix"

	"github.com/incarnate-dev/incarnate/internal/fsutil"
	"github.com/incarnate-dev/incarnate/sandbox"
)

// socketPath is where session name's keeper listens: in the user's
// runtime directory, named by a hash of the store and the session so the
// path stays short (a unix socket path has 108 bytes) whatever the names.
func (s *Store) socketPath(name string) (string, error) {
	s.runtimeOnce.Do(func() { s.runtime, s.runtimeErr = s.runtimeDir() })
	if s.runtimeErr != nil {
		return "", s.runtimeErr
	}
	return filepath.Join(s.runtime, SocketName(s.Root, name)), nil
}

// SocketName is the file name of the keeper socket of session name in
// the store at root, in the runtime directory. The pre-runtime stage
// works it out the same way (fnv64a in internal/prestage/c/stage.c).
func SocketName(root, name string) string {
	h := fnv.New64a()
	fmt.Fprintf(h, "%s\x00%s", root, name)
	return fmt.Sprintf("%016x.sock", h.Sum64())
}

// runtimeDir is $XDG_RUNTIME_DIR/incarnate, or /tmp/incarnate-UID when
// that is unset. It must belong to the user and be closed to everyone
// else: whoever can write there could stand in for a keeper. Anyone can
// make /tmp/incarnate-UID first, for someone else; then a private
// directory of the user's, with a name nobody can guess, takes its place,
// and the store remembers which (run-dir), so every command finds it.
func (s *Store) runtimeDir() (string, error) {
	base := os.Getenv("XDG_RUNTIME_DIR")
	name := "incarnate"
	if base == "" {
		base, name = os.TempDir(), fmt.Sprintf("incarnate-%d", sandbox.HostUID())
	}
	dir := filepath.Join(base, name)
	if err := os.Mkdir(dir, 0o700); err != nil && !os.IsExist(err) {
		return "", err
	}
	taken := privateDir(dir)
	if taken == nil {
		return dir, nil
	}
	record := filepath.Join(s.Root, "run-dir.json")
	var known struct {
		Dir string `json:"dir"`
	}
	if fsutil.ReadJSON(record, &known) == nil && filepath.IsAbs(known.Dir) && privateDir(known.Dir) == nil {
		return known.Dir, nil
	}
	alt, err := os.MkdirTemp(os.TempDir(), name+"-")
	if err != nil {
		return "", fmt.Errorf("%v, and no private one could be made instead: %w", taken, err)
	}
	known.Dir = alt
	if err := fsutil.WriteJSON(record, known); err != nil {
		os.Remove(alt)
		return "", err
	}
	Notice(fmt.Sprintf("%v: using the private runtime directory %s instead (see `incarnate doctor`)", taken, alt))
	return alt, nil
}

// privateDir says why dir is not a directory of the caller's that only
// the caller can enter, or nil.
func privateDir(dir string) error {
	var st unix.Stat_t
	if err := unix.Lstat(dir, &st); err != nil {
		return &os.PathError{Op: "lstat", Path: dir, Err: err}
	}
	if st.Mode&unix.S_IFMT != unix.S_IFDIR || int(st.Uid) != os.Geteuid() || st.Mode&0o077 != 0 {
		return fmt.Errorf("runtime directory %q is not a private directory of yours", dir)
	}
	return nil
}

// Notice tells the user something once, out of band of a command's
// output; the CLI and the interface set it.
var Notice = func(string) {}

// RuntimeDir is where session sockets live for this store, for doctor.
func (s *Store) RuntimeDir() (string, error) {
	sock, err := s.socketPath("x")
	return filepath.Dir(sock), err
}

// staleAfter is how old a socket nobody answers on must be to be swept:
// a keeper's starter binds and listens at once, so one between the two
// is never that old.
const staleAfter = time.Minute

// sweepSockets removes the sockets of keepers that died without removing
// their own (killed, or from before keepers did).
func (s *Store) sweepSockets() {
	dir, err := s.RuntimeDir()
	if err != nil {
		return
	}
	ents, err := os.ReadDir(dir)
	if err != nil {
		return
	}
	for _, e := range ents {
		if e.Type()&fs.ModeSocket == 0 || !strings.HasSuffix(e.Name(), ".sock") {
			continue
		}
		path := filepath.Join(dir, e.Name())
		if fi, err := e.Info(); err != nil || time.Since(fi.ModTime()) < staleAfter {
			continue
		}
		if conn, err := sandbox.Dial(path); err == nil {
			conn.Close()
		} else if errors.Is(err, sandbox.ErrNoKeeper) {
			_ = os.Remove(path)
		}
	}
}
