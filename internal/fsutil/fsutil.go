// Package fsutil holds the few file-system moves the session and layer
// stores share: atomic metadata writes, exact tree copies and removals
// that never leave the store's file system.
package fsutil

import (
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
)

// WriteJSON writes v to path atomically: a temp file beside it, fsync,
// rename, fsync of the directory. A crash leaves the old file or the new
// one, never half of either.
func WriteJSON(path string, v any) error {
	b, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		return err
	}
	dir := filepath.Dir(path)
	f, err := os.CreateTemp(dir, ".tmp-"+filepath.Base(path)+"-*")
	if err != nil {
		return err
	}
	tmp := f.Name()
	defer os.Remove(tmp) // a no-op once renamed
	if _, err := f.Write(append(b, '\n')); err != nil {
		f.Close()
		return err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	if err := os.Rename(tmp, path); err != nil {
		return err
	}
	return SyncDir(dir)
}

// ReadJSON reads path into v.
func ReadJSON(path string, v any) error {
	b, err := readSmall(path)
	if err != nil {
		return err
	}
	if err := json.Unmarshal(b, v); err != nil {
		return fmt.Errorf("%s: %w", path, err)
	}
	return nil
}

// SyncDir makes a rename or create inside dir durable.
func SyncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}

// CopyTree copies src to dst exactly: owners (where the caller may set
// them), modes, timestamps, extended attributes (overlay whiteouts and
// opaque markers among them), device nodes, hard links and holes, with
// reflinks where the file system has them. GNU cp does all of this well
// and fast, so it is used rather than rewritten. dst must not exist.
func CopyTree(src, dst string) error {
	out, err := exec.Command("cp", "-a", "--reflink=auto", "--no-target-directory", "--", src, dst).CombinedOutput()
	if err != nil {
		return fmt.Errorf("copy %q to %q: %v: %s", src, dst, err, out)
	}
	return nil
}
