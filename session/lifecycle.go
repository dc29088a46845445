package session

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"time"

	"github.com/incarnate-dev/incarnate/internal/fsutil"
	"github.com/incarnate-dev/incarnate/internal/progress"
	"github.com/incarnate-dev/incarnate/layers"
)

// Remove discards session name and everything written in it. It returns
// as soon as the session is in trash/; the deletion runs in the
// background. With force, whatever runs inside is stopped first.
func (s *Store) Remove(name string, force bool) error {
	lk, err := s.claim(name, force, ", to be discarded")
	if err != nil {
		return err
	}
	defer lk.release()
	return s.toTrash(s.Dir(name), name)
}

// Reset throws away everything written in session name, keeping its name,
// base and options: it is as new.
func (s *Store) Reset(name string, force bool) error {
	lk, err := s.claim(name, force, ", for a reset")
	if err != nil {
		return err
	}
	defer lk.release()
	dir := s.Dir(name)
	fresh := filepath.Join(dir, "upper.new")
	if err := os.Mkdir(fresh, 0o755); err != nil {
		return err
	}
	// The old upper goes to trash in one rename and the empty one takes
	// its place in another: a crash anywhere in between is finished by
	// the next command that claims the session or enters it (see
	// ensureUpper).
	if err := s.toTrash(filepath.Join(dir, "upper"), name+"-upper"); err != nil {
		return err
	}
	if err := os.Rename(fresh, filepath.Join(dir, "upper")); err != nil {
		return err
	}
	// overlayfs's scratch dir goes too: it may hold a half-finished
	// copy-up of the old upper.
	if err := s.toTrash(filepath.Join(dir, "work"), name+"-work"); err != nil {
		return err
	}
	if err := os.Mkdir(filepath.Join(dir, "work"), 0o755); err != nil {
		return err
	}
	s.invalidateStats(name)
	return nil
}

// Rename gives session old the name new.
func (s *Store) Rename(old, new string, force bool) error {
	if err := layers.ValidateName("session", new); err != nil {
		return err
	}
	lk, err := s.claim(old, force, ", to be renamed")
	if err != nil {
		return err
	}
	defer lk.release()
	if _, err := os.Lstat(s.Dir(new)); err == nil {
		return fmt.Errorf("session %q: %w", new, layers.ErrExist)
	}
	// The directory carries the name (Get trusts it), so the rename is
	// one atomic step; the metadata's copy follows.
	if err := renameNoReplace(s.Dir(old), s.Dir(new)); err != nil {
		if errors.Is(err, fs.ErrExist) {
			return fmt.Errorf("session %q: %w", new, layers.ErrExist)
		}
		return err
	}
	m, err := s.Get(new)
	if err != nil {
		return err
	}
	return fsutil.WriteJSON(s.metaPath(new), m)
}

// SetOptions gives session name the options o in place of its own,
// checked as Create checks them. The session must be free: what runs
// inside keeps the options it started with, unless force stops it.
func (s *Store) SetOptions(name string, o Options, force bool) (*Meta, error) {
	if err := o.Validate(); err != nil {
		return nil, err
	}
	if err := s.checkBinds(o.Binds); err != nil {
		return nil, err
	}
	if err := resolveBinds(o.Binds); err != nil {
		return nil, err
	}
	lk, err := s.claim(name, force, ", to change its options")
	if err != nil {
		return nil, err
	}
	defer lk.release()
	m, err := s.Get(name)
	if err != nil {
		return nil, err
	}
	m.Options = o
	return m, fsutil.WriteJSON(s.metaPath(name), m)
}

// Clone makes session dst an exact copy of session src: same base and
// options, and an upper dir copied with owners, modes, xattrs, overlay
// whiteouts and opaque dirs, hard links and holes. When progress is not
// nil, a progress line is drawn on it as the copy goes.
func (s *Store) Clone(src, dst string, force bool, progress io.Writer) (*Meta, error) {
	if err := layers.ValidateName("session", dst); err != nil {
		return nil, err
	}
	if _, err := os.Lstat(s.Dir(dst)); err == nil {
		return nil, fmt.Errorf("session %q: %w", dst, layers.ErrExist)
	}
	lk, err := s.claim(src, force, ", to be cloned")
	if err != nil {
		return nil, err
	}
	defer lk.release()
	m, err := s.Get(src)
	if err != nil {
		return nil, err
	}
	m.Name, m.Created, m.LastEntered = dst, time.Now().UTC(), time.Time{}
	return m, s.publish(m, func(dir string) error {
		if err := s.copyUpper(src, filepath.Join(dir, "upper"), "copying "+src, progress); err != nil {
			return err
		}
		// What incarnate itself made in the upper dir is recorded beside
		// it, and goes with the copy.
		return s.copyStubs(src, dir)
	})
}

// copyUpper copies session name's upper dir to dst, drawing a progress
// line on w (if not nil) against the size ls last measured.
func (s *Store) copyUpper(name, dst, label string, w io.Writer) error {
	var st Stats
	_ = fsutil.ReadJSON(s.statsPath(name), &st) // no figures: bytes without a total
	p := progress.New(w, label, st.Size)
	defer p.Finish()
	if err := fsutil.CopyTree(s.upperDir(name), dst, p.Add); err != nil {
		return err
	}
	p.Complete()
	return nil
}

// claim takes session name's lock for a change that must not happen
// while it runs: refused when it is in use, unless force, which stops
// what runs inside first. A reset a crash cut short is finished first.
func (s *Store) claim(name string, force bool, why string) (*sessionLock, error) {
	if err := s.Exists(name); err != nil {
		return nil, err
	}
	lk, err := s.lockSettled(name)
	if errors.Is(err, layers.ErrInUse) && force {
		if _, err := s.Stop(name, 5*time.Second, why); err != nil {
			return nil, err
		}
		lk, err = s.lock(name)
	}
	if errors.Is(err, layers.ErrInUse) {
		return nil, fmt.Errorf("session %q is in use (%d running inside): stop it first (incarnate stop %s) or pass --force", name, s.Shells(name), name)
	}
	if err != nil {
		return nil, err
	}
	if err := s.ensureUpper(name); err != nil {
		lk.release()
		return nil, err
	}
	return lk, nil
}

// ensureUpper finishes a reset that a crash cut short, whichever of its
// steps it reached: an empty upper it had made takes the place of the
// one it moved to trash, one made too early is dropped, and a missing
// work dir is made. A session is never entered, reset, copied or
// committed without both of its overlay dirs.
func (s *Store) ensureUpper(name string) error {
	dir := s.Dir(name)
	upper, fresh := filepath.Join(dir, "upper"), filepath.Join(dir, "upper.new")
	if _, err := os.Lstat(upper); err == nil {
		if err := fsutil.RemoveTree(fresh); err != nil {
			return err
		}
	} else if err := os.Rename(fresh, upper); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return err
	}
	for _, d := range []string{upper, filepath.Join(dir, "work")} {
		if err := os.Mkdir(d, 0o755); err != nil && !errors.Is(err, fs.ErrExist) {
			return err
		}
	}
	return nil
}

// Exists checks that session name is there, damaged or not.
func (s *Store) Exists(name string) error {
	if err := layers.ValidateName("session", name); err != nil {
		return err
	}
	if _, err := os.Lstat(s.Dir(name)); err != nil {
		return fmt.Errorf("session %q: %w (see `incarnate ls`)", name, layers.ErrNotExist)
	}
	return nil
}

// settleWait bounds how long a change waits for a keeper that has nothing
// left to run but has not finished exiting.
const settleWait = 3 * time.Second

// lockSettled takes session name's lock for a change, waiting a moment
// when it is held by a keeper with nothing left to run: one on its way
// out (`run s -- true && rm s` must not find s in use because the
// keeper's exit trails the command's), or one that lingers, which is
// asked to go.
func (s *Store) lockSettled(name string) (*sessionLock, error) {
	deadline := time.Now().Add(settleWait)
	asked := false
	for {
		lk, err := s.lock(name)
		if !errors.Is(err, layers.ErrInUse) || time.Now().After(deadline) {
			return lk, err
		}
		if !asked {
			asked = true
			if gone, _ := s.release(name); gone {
				continue
			}
		}
		if s.Shells(name) > 0 {
			return lk, err
		}
		time.Sleep(2 * time.Millisecond)
	}
}
