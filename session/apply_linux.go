package session

import (
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"maps"
	"os"
	"path"
	"slices"
	"strconv"
	"strings"
	"time"

	"golang.org/x/sys/unix"

	"github.com/incarnate-dev/incarnate/internal/faults"
	"github.com/incarnate-dev/incarnate/internal/fsutil"
	"github.com/incarnate-dev/incarnate/internal/progress"
	"github.com/incarnate-dev/incarnate/layers"
	"github.com/incarnate-dev/incarnate/sandbox"
)

// Apply brings a host-base session's changes back to the host, path by
// path, in the order diff lists them (a directory before what it holds).
//
// A change is a conflict when the host changed the path after the
// session did and the host's version is not the session's already: the
// host entry's ctime is later than the birth time of the upper entry
// (statx btime: the copy-up, the whiteout, the creation), or the host
// now has something where the session added a path. Conflicts are left
// alone unless forced. "Already the session's version" is what makes a
// rerun after a crash finish the work: what landed before the crash is
// no conflict, and goes on as applied.
//
// Every file lands whole: written to a temp file in its directory, then
// renamed over the old one, so each path is the old or the new version.
// Host directories are reached from "/" with no symlink followed: a path
// that became a symlink on the host meanwhile is refused, never followed.
// Applied entries then leave the upper dir, once the host's file system
// has them on disk, so the session sees the host's file again.

// Step is one change of an apply, with why it cannot be made when so.
type Step struct {
	Change
	// Conflict says why the change would overwrite something the host
	// changed since; Denied, why it cannot be made at all.
	Conflict string `json:"conflict,omitempty"`
	Denied   string `json:"denied,omitempty"`
	// onHost: the host has an entry at the path now.
	onHost bool
}

// ApplyOptions choose what Apply does.
type ApplyOptions struct {
	Paths  []string // only changes at or below these; all when empty
	Force  bool     // overwrite conflicts, and stop the session first
	Keep   bool     // leave applied entries in the upper dir
	DryRun bool     // plan only
	// Progress, when set, gets a line counting the paths applied.
	Progress io.Writer
}

// ErrApplyNeedsHost: the session's changes have nowhere to go back to.
var ErrApplyNeedsHost = errors.New("apply takes a session on the host base, or the changes in its :cow binds: an imported base's files came from no place on this machine")

// cowBinds are session m's copy-on-write binds, by target.
func cowBinds(m *Meta) map[string]string {
	cow := map[string]string{}
	for _, b := range m.Binds {
		if b.Cow {
			cow[b.Dst] = b.Src
		}
	}
	return cow
}

// hostTarget maps a session path to the host path its change goes back
// to: itself on the host base, SRC/... below a :cow bind's DST.
func hostTarget(m *Meta, onHost bool) func(p string) (string, bool) {
	cow := cowBinds(m)
	return func(p string) (string, bool) {
		for dst, src := range cow {
			if strings.HasPrefix(p, dst+"/") {
				return src + strings.TrimPrefix(p, dst), true
			}
		}
		return p, onHost
	}
}

// PlanApply lists what applying session name would do.
func (s *Store) PlanApply(name string, paths []string) ([]Step, error) {
	m, lowers, err := s.overlayOf(name)
	if err != nil {
		return nil, err
	}
	b, err := s.Layers.Get(m.Base)
	if err != nil {
		return nil, err
	}
	if !b.Builtin() && len(cowBinds(m)) == 0 {
		return nil, fmt.Errorf("session %q is on base %s and has no --bind SRC:DST:cow: %w", name, m.Base, ErrApplyNeedsHost)
	}
	changes, err := diffUpper(s.upperDir(name), lowers, s.formatOf(m), mountPoints(m))
	if err != nil {
		return nil, err
	}
	changes, err = selectPaths(changes, paths)
	if err != nil {
		return nil, fmt.Errorf("session %q: %w", name, err)
	}
	a, err := s.newApplier(m)
	if err != nil {
		return nil, err
	}
	defer a.close()
	a.target = hostTarget(m, b.Builtin())
	steps := make([]Step, len(changes))
	made := map[string]bool{} // directories the apply makes anew
	for i, c := range changes {
		if made[path.Dir(c.Path)] {
			steps[i] = Step{Change: c} // inside a new directory: nothing there to conflict with
		} else {
			steps[i] = a.plan(c)
		}
		// A directory both made is merged, not new: what the host put
		// in it is checked like any other path. A replaced one is new,
		// its host contents checked by plan as a whole.
		st := steps[i]
		fresh := c.Kind == Replaced || (c.Kind == Added && !st.onHost)
		if st.Denied == "" && st.Conflict == "" && fresh && a.isUpperDir(c.Path) {
			made[c.Path] = true
		}
	}
	return steps, nil
}

// selectPaths keeps the changes at or below paths; each path must name
// at least one.
func selectPaths(changes []Change, paths []string) ([]Change, error) {
	if len(paths) == 0 {
		return changes, nil
	}
	var out []Change
	for _, p := range paths {
		p = path.Clean("/" + p)
		n := 0
		for _, c := range changes {
			if c.Path == p || strings.HasPrefix(c.Path, strings.TrimSuffix(p, "/")+"/") {
				n++
				if !slices.Contains(out, c) {
					out = append(out, c)
				}
			}
		}
		if n == 0 {
			return nil, fmt.Errorf("%s is not among the session's changes (see `incarnate diff`)", p)
		}
	}
	// Back in the diff's order: a directory before what it holds.
	slices.SortStableFunc(out, func(a, b Change) int {
		return slices.Index(changes, a) - slices.Index(changes, b)
	})
	return out, nil
}

// Apply applies session name's changes as o says, and returns the steps,
// those applied among them having neither Conflict nor Denied (or forced
// over a conflict).
func (s *Store) Apply(name string, o ApplyOptions) ([]Step, error) {
	if o.DryRun {
		return s.PlanApply(name, o.Paths)
	}
	lk, err := s.claim(name, o.Force, ", for an apply")
	if err != nil {
		return nil, err
	}
	defer lk.release()
	steps, err := s.PlanApply(name, o.Paths)
	if err != nil {
		return nil, err
	}
	m, err := s.Get(name)
	if err != nil {
		return nil, err
	}
	b, err := s.Layers.Get(m.Base)
	if err != nil {
		return nil, err
	}
	a, err := s.newApplier(m)
	if err != nil {
		return nil, err
	}
	defer a.close()
	a.target = hostTarget(m, b.Builtin())
	var todo []Step
	for _, st := range steps {
		if st.Denied == "" && (st.Conflict == "" || o.Force) {
			todo = append(todo, st)
		}
	}
	if err := a.begin(s.applyJournal(name), todo); err != nil {
		return nil, err
	}
	var done []Step
	p := progress.NewCount(o.Progress, "applying "+name, int64(len(todo)), "paths")
	defer p.Finish()
	for _, st := range todo {
		p.Add(1)
		if err := a.apply(st.Change); err != nil {
			return steps, fmt.Errorf("apply %s: %w (the paths before it are applied; `incarnate apply %s` again goes on)", st.Path, err, name)
		}
		done = append(done, st)
		faults.Point("apply-step")
	}
	a.retime(done)
	// On disk on the host before the session lets go of its copies.
	for _, dir := range append([]string{"/"}, slices.Collect(maps.Values(cowBinds(m)))...) {
		if err := syncFS(dir); err != nil {
			return steps, err
		}
	}
	faults.Point("apply-landed")
	if !o.Keep {
		a.drop(done)
		s.invalidateStats(name)
	}
	return steps, os.Remove(s.applyJournal(name))
}

// applyRecord is the journal of an apply in progress: should incarnate
// die in it, the next command says so, and a rerun finishes it and
// removes the temp files it left (named by Token, in Targets' dirs).
type applyRecord struct {
	Started time.Time `json:"started"`
	Paths   int       `json:"paths"`
	Token   string    `json:"token,omitempty"`
	Targets []string  `json:"targets,omitempty"` // host paths, in order
}

// begin sweeps what an apply cut short left, then writes the journal of
// this one, which will apply steps.
func (a *applier) begin(journal string, steps []Step) error {
	var old applyRecord
	if fsutil.ReadJSON(journal, &old) == nil && old.Token != "" {
		a.sweepTemps(old)
	}
	r := applyRecord{Started: time.Now().UTC(), Paths: len(steps), Token: strconv.FormatInt(time.Now().UnixNano(), 36)}
	for _, st := range steps {
		hp, _ := a.target(st.Path)
		r.Targets = append(r.Targets, hp)
	}
	a.token = r.Token
	return fsutil.WriteJSON(journal, r)
}

// sweepTemps removes the temp files the apply of r may have left, each
// beside its target, reached from "/" with no symlink followed.
func (a *applier) sweepTemps(r applyRecord) {
	for _, hp := range r.Targets {
		if fd, err := a.hostDir.get(rel(path.Dir(hp)), func(d string) (int, error) { return openDirBeneath(a.host, d) }); err == nil {
			_ = unix.Unlinkat(fd, tempName(r.Token, path.Base(hp)), 0)
		}
	}
	a.hostDir.drop()
}

// tempName is where name's new version is written before its rename,
// made from the apply's token so that a later apply finds what a crash
// left.
func tempName(token, name string) string {
	t := ".incarnate-" + token + "-" + name
	if len(t) > 255 {
		sum := sha256.Sum256([]byte(name))
		t = fmt.Sprintf(".incarnate-%s-%x", token, sum[:12])
	}
	return t
}

func (s *Store) applyJournal(name string) string { return s.Dir(name) + "/apply.json" }

// InterruptedApply says when an apply of session name was cut short.
func (s *Store) InterruptedApply(name string) (time.Time, bool) {
	var r applyRecord
	if fsutil.ReadJSON(s.applyJournal(name), &r) != nil {
		return time.Time{}, false
	}
	return r.Started, true
}

// applier holds the two trees an apply works between.
type applier struct {
	upper, host int // O_PATH fds of the upper dir and of "/"
	root        bool
	f           format
	buf         []byte
	// The directory last opened in each tree: the diff lists a
	// directory's entries together, so most lookups are the same one.
	hostDir, upperDir dirCache
	// target is where a session path goes back to on the host.
	target func(p string) (string, bool)
	// ups are the upper entries' statx, by path: the upper dir does not
	// change while an apply holds the session.
	ups map[string]*unix.Statx_t
	// token names this apply's temp files (tempName).
	token string
}

// dirCache is one open directory and its path.
type dirCache struct {
	rel string
	fd  int
}

// get opens directory rel with open, or returns it open already. The fd
// is the cache's: callers do not close it.
func (c *dirCache) get(rel string, open func(string) (int, error)) (int, error) {
	if c.fd > 0 && c.rel == rel {
		return c.fd, nil
	}
	c.drop()
	fd, err := open(rel)
	if err != nil {
		return -1, err
	}
	c.rel, c.fd = rel, fd
	return fd, nil
}

// drop forgets the directory, as the apply changes what a path names.
func (c *dirCache) drop() {
	if c.fd > 0 {
		unix.Close(c.fd)
	}
	c.fd, c.rel = 0, ""
}

func (s *Store) newApplier(m *Meta) (*applier, error) {
	upper, err := unix.Open(s.upperDir(m.Name), unix.O_PATH|unix.O_DIRECTORY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, &os.PathError{Op: "open", Path: s.upperDir(m.Name), Err: err}
	}
	host, err := unix.Open("/", unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		unix.Close(upper)
		return nil, err
	}
	return &applier{upper: upper, host: host, root: !sandbox.Rootless(), f: s.formatOf(m), buf: make([]byte, 1<<20)}, nil
}

func (a *applier) close() {
	a.hostDir.drop()
	a.upperDir.drop()
	unix.Close(a.upper)
	unix.Close(a.host)
}

func rel(p string) string {
	if r := strings.TrimPrefix(p, "/"); r != "" {
		return r
	}
	return "."
}

// hostParent opens the directory that holds host path p, from "/" with
// no symlink followed.
func (a *applier) hostParent(p string) (int, error) {
	hp, ok := a.target(p)
	if !ok {
		return -1, errNoTarget
	}
	return a.hostDir.get(rel(path.Dir(hp)), func(r string) (int, error) { return openDirBeneath(a.host, r) })
}

var errNoTarget = errors.New("not on the host base nor in a :cow bind: it came from no place on this machine")

// upperParent opens the directory of the upper dir that holds p.
func (a *applier) upperParent(p string) (int, error) {
	return a.upperDir.get(rel(path.Dir(p)), func(r string) (int, error) { return openBeneath(a.upper, r) })
}

// openDirBeneath opens directory rel beneath dirfd a component at a
// time, none of them a symlink (ELOOP) and each a directory.
func openDirBeneath(dirfd int, rel string) (int, error) {
	how := &unix.OpenHow{Flags: unix.O_PATH | unix.O_DIRECTORY | unix.O_CLOEXEC,
		Resolve: unix.RESOLVE_BENEATH | unix.RESOLVE_NO_SYMLINKS | unix.RESOLVE_NO_MAGICLINKS}
	at, err := unix.Openat2(dirfd, ".", how)
	if err != nil {
		return -1, err
	}
	for _, name := range strings.Split(rel, "/") {
		if name == "" || name == "." {
			continue
		}
		next, err := unix.Openat2(at, name, how)
		unix.Close(at)
		if err != nil {
			return -1, err
		}
		at = next
	}
	return at, nil
}

// stat is the statx of name in dirfd, not following it.
func stat(dirfd int, name string) (*unix.Statx_t, error) {
	var st unix.Statx_t
	err := unix.Statx(dirfd, name, unix.AT_SYMLINK_NOFOLLOW, unix.STATX_BASIC_STATS|unix.STATX_BTIME, &st)
	if err != nil {
		return nil, err
	}
	return &st, nil
}

func tsTime(ts unix.StatxTimestamp) time.Time { return time.Unix(ts.Sec, int64(ts.Nsec)) }

// plan checks change c against the host.
func (a *applier) plan(c Change) Step {
	st := Step{Change: c}
	if c.Path == "/" {
		st.Denied = "apply does not change the host's / itself"
		return st
	}
	up, err := a.upperStat(c.Path)
	if err != nil {
		st.Denied = "cannot read the session's version: " + err.Error()
		return st
	}
	pfd, err := a.hostParent(c.Path)
	if errors.Is(err, errNoTarget) {
		st.Denied = err.Error()
		return st
	}
	if errors.Is(err, unix.ELOOP) {
		st.Denied = "a directory above it on the host is a symlink now, which apply never follows"
		return st
	}
	if err != nil {
		st.Denied = "its directory is not on the host (" + err.Error() + "); apply the directory too"
		return st
	}
	if !a.root && unix.Faccessat(pfd, ".", unix.W_OK, unix.AT_EACCESS) != nil {
		hp, _ := a.target(c.Path)
		st.Denied = "you may not write " + path.Dir(hp)
		return st
	}
	host, err := stat(pfd, path.Base(c.Path))
	if errors.Is(err, unix.ENOENT) {
		host = nil
	} else if err != nil {
		st.Denied = err.Error()
		return st
	}
	st.onHost = host != nil
	if host != nil && !a.root && host.Uid != uint32(os.Geteuid()) && sticky(pfd) {
		hp, _ := a.target(c.Path)
		st.Denied = "it is someone else's, in " + path.Dir(hp) + ", a sticky directory (like /tmp) where only its owner may replace or delete it"
		return st
	}
	if st.Conflict = a.conflict(c, up, host); st.Conflict != "" {
		return st
	}
	if host != nil && host.Mode&unix.S_IFMT == unix.S_IFDIR && (c.Kind == Deleted || c.Kind == Replaced) {
		st.Conflict, st.Denied = hostChangedBelow(pfd, path.Base(c.Path), c.Kind, tsTime(up.Btime))
	}
	return st
}

// sticky reports whether directory fd has its sticky bit set.
func sticky(fd int) bool {
	var st unix.Stat_t
	return unix.Fstat(fd, &st) == nil && st.Mode&unix.S_ISVTX != 0
}

var errFound = errors.New("found")

// hostChangedBelow is the conflict of deleting or replacing host
// directory name (of pfd), which takes all it holds: an entry inside it
// that changed after since, the session's change. The directory's own
// ctime moves only when an entry directly in it comes or goes, so the
// tree is walked. A tree the caller cannot read is denied: its removal
// would fail half-way.
func hostChangedBelow(pfd int, name string, kind Kind, since time.Time) (conflict, denied string) {
	var found string
	err := fsutil.WalkAt(pfd, name, func(dirfd int, n, _ string, st *unix.Stat_t) error {
		if time.Unix(st.Ctim.Unix()).After(since) {
			dir, _ := os.Readlink("/proc/self/fd/" + strconv.Itoa(dirfd))
			found = dir + "/" + n
			return errFound
		}
		return nil
	})
	switch {
	case errors.Is(err, errFound):
		return fmt.Sprintf("%s in it changed on the host since the session %s it", found, kind), ""
	case err != nil:
		return "", "cannot look through it on the host: " + err.Error()
	}
	return "", ""
}

func (a *applier) isUpperDir(p string) bool {
	st, err := a.upperStat(p)
	return err == nil && st.Mode&unix.S_IFMT == unix.S_IFDIR
}

func (a *applier) upperStat(p string) (*unix.Statx_t, error) {
	if st, ok := a.ups[p]; ok {
		return st, nil
	}
	var st *unix.Statx_t
	var err error
	if p == "/" {
		st, err = stat(a.upper, ".")
	} else {
		var dfd int
		if dfd, err = a.upperParent(p); err == nil {
			st, err = stat(dfd, path.Base(p))
		}
	}
	if err != nil {
		return nil, err
	}
	if a.ups == nil {
		a.ups = map[string]*unix.Statx_t{}
	}
	a.ups[p] = st
	return st, nil
}

// conflict says why change c (upper entry up) would undo a change of
// the host's (host, nil when the host has nothing there), or "".
func (a *applier) conflict(c Change, up, host *unix.Statx_t) string {
	if host == nil {
		if c.Kind == Modified {
			return "deleted on the host since the session changed it"
		}
		return ""
	}
	isDir := func(st *unix.Statx_t) bool { return st.Mode&unix.S_IFMT == unix.S_IFDIR }
	switch c.Kind {
	case Added:
		if isDir(up) && isDir(host) {
			return "" // both made the directory: what is in it is merged
		}
		if a.same(c.Path, up, host) {
			return ""
		}
		return "made on the host since the session made it"
	case Deleted:
		if tsTime(host.Ctime).After(tsTime(up.Btime)) {
			return "changed on the host since the session deleted it"
		}
		return ""
	}
	if up.Mask&unix.STATX_BTIME == 0 {
		return "the file system records no birth time, so a change on the host cannot be ruled out"
	}
	if tsTime(host.Ctime).After(tsTime(up.Btime)) && !a.same(c.Path, up, host) {
		return "changed on the host since the session changed it"
	}
	return ""
}

// same reports whether the host entry is the session's version already:
// type, mode, size and content (an apply that landed before a crash).
func (a *applier) same(p string, up, host *unix.Statx_t) bool {
	if up.Mode != host.Mode || (a.root && (up.Uid != host.Uid || up.Gid != host.Gid)) {
		return false
	}
	switch up.Mode & unix.S_IFMT {
	case unix.S_IFDIR:
		return true
	case unix.S_IFREG:
		return up.Size == host.Size && a.sameContent(p)
	case unix.S_IFLNK:
		u, e1 := a.readlink(a.upper, p)
		h, e2 := a.readlink(a.host, p)
		return e1 == nil && e2 == nil && u == h
	}
	return false
}

func (a *applier) readlink(root int, p string) (string, error) {
	dfd, err := a.parentIn(root, p)
	if err != nil {
		return "", err
	}
	buf := make([]byte, unix.PathMax)
	n, err := unix.Readlinkat(dfd, path.Base(p), buf)
	if err != nil {
		return "", err
	}
	return string(buf[:n]), nil
}

func (a *applier) sameContent(p string) bool {
	u, err := a.openFile(a.upper, p)
	if err != nil {
		return false
	}
	defer u.Close()
	h, err := a.openFile(a.host, p)
	if err != nil {
		return false
	}
	defer h.Close()
	hb := make([]byte, len(a.buf))
	for {
		n, err1 := io.ReadFull(u, a.buf)
		m, err2 := io.ReadFull(h, hb)
		if n != m || string(a.buf[:n]) != string(hb[:m]) {
			return false
		}
		if err1 != nil || err2 != nil {
			return (err1 == io.EOF || err1 == io.ErrUnexpectedEOF) && (err2 == io.EOF || err2 == io.ErrUnexpectedEOF)
		}
	}
}

// openFile opens regular file p beneath root for reading.
func (a *applier) openFile(root int, p string) (*os.File, error) {
	dfd, err := a.parentIn(root, p)
	if err != nil {
		return nil, err
	}
	fd, err := unix.Openat(dfd, path.Base(p), unix.O_RDONLY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, err
	}
	return os.NewFile(uintptr(fd), p), nil
}

// parentIn is the directory holding p in root, the upper dir or "/".
func (a *applier) parentIn(root int, p string) (int, error) {
	if root == a.host {
		return a.hostParent(p)
	}
	return a.upperParent(p)
}

// apply makes change c on the host.
func (a *applier) apply(c Change) error {
	pfd, err := a.hostParent(c.Path)
	if err != nil {
		return err
	}
	base := path.Base(c.Path)
	if c.Kind == Deleted || c.Kind == Replaced || a.isUpperDir(c.Path) {
		// What a path names changes here: nothing cached below it stays.
		defer a.hostDir.drop()
	}
	if c.Kind == Deleted {
		return removeHost(pfd, base, c.Path)
	}
	up, err := a.upperStat(c.Path)
	if err != nil {
		return err
	}
	if c.Kind == Replaced {
		// The host's directory goes with all it holds; the session's
		// entries in it follow as additions.
		if err := removeHost(pfd, base, c.Path); err != nil {
			return err
		}
	}
	switch up.Mode & unix.S_IFMT {
	case unix.S_IFDIR:
		return a.dir(pfd, base, c.Path, up)
	case unix.S_IFREG, unix.S_IFLNK:
		return a.land(pfd, base, c.Path, up)
	}
	return fmt.Errorf("%s is a device, fifo or socket, which apply does not make", c.Path)
}

// removeHost deletes name (path p) in pfd, a whole tree for a directory.
func removeHost(pfd int, name, p string) error {
	var st unix.Stat_t
	if err := unix.Fstatat(pfd, name, &st, unix.AT_SYMLINK_NOFOLLOW); errors.Is(err, unix.ENOENT) {
		return nil
	} else if err != nil {
		return err
	}
	if st.Mode&unix.S_IFMT == unix.S_IFDIR {
		return fsutil.RemoveTree("/proc/self/fd/" + strconv.Itoa(pfd) + "/" + name)
	}
	return unix.Unlinkat(pfd, name, 0)
}

// dir makes (or keeps) directory name like the session's, up.
func (a *applier) dir(pfd int, name, p string, up *unix.Statx_t) error {
	if err := unix.Mkdirat(pfd, name, 0o700); err != nil && !errors.Is(err, unix.EEXIST) {
		return err
	}
	fd, err := unix.Openat(pfd, name, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
	if err != nil {
		return err
	}
	defer unix.Close(fd)
	return a.meta(fd, p, up)
}

// land writes the session's file or symlink p to a temp name beside name,
// then renames it over name.
func (a *applier) land(pfd int, name, p string, up *unix.Statx_t) error {
	tmp := tempName(a.token, name)
	if up.Mode&unix.S_IFMT == unix.S_IFLNK {
		target, err := a.readlink(a.upper, p)
		if err != nil {
			return err
		}
		if err := unix.Symlinkat(target, pfd, tmp); err != nil {
			return err
		}
		if a.root {
			_ = unix.Fchownat(pfd, tmp, int(up.Uid), int(up.Gid), unix.AT_SYMLINK_NOFOLLOW)
		}
		ts := []unix.Timespec{{Sec: up.Atime.Sec, Nsec: int64(up.Atime.Nsec)}, {Sec: up.Mtime.Sec, Nsec: int64(up.Mtime.Nsec)}}
		_ = unix.UtimesNanoAt(pfd, tmp, ts, unix.AT_SYMLINK_NOFOLLOW)
		return a.rename(pfd, tmp, name)
	}
	in, err := a.openFile(a.upper, p)
	if err != nil {
		return err
	}
	defer in.Close()
	fd, err := unix.Openat(pfd, tmp, unix.O_WRONLY|unix.O_CREAT|unix.O_EXCL|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0o600)
	if err != nil {
		return err
	}
	out := os.NewFile(uintptr(fd), tmp)
	_, err = io.CopyBuffer(out, in, a.buf)
	if err == nil {
		err = a.metaFrom(in, fd, p, up)
	}
	if cerr := out.Close(); err == nil {
		err = cerr
	}
	faults.Point("apply-temp-written")
	if err != nil {
		_ = unix.Unlinkat(pfd, tmp, 0)
		return err
	}
	return a.rename(pfd, tmp, name)
}

func (a *applier) rename(pfd int, tmp, name string) error {
	err := unix.Renameat(pfd, tmp, pfd, name)
	if errors.Is(err, unix.EISDIR) || errors.Is(err, unix.ENOTEMPTY) || errors.Is(err, unix.EEXIST) {
		// A directory where the session has a file: it goes first.
		if err = removeHost(pfd, name, name); err == nil {
			err = unix.Renameat(pfd, tmp, pfd, name)
		}
	}
	if err != nil {
		_ = unix.Unlinkat(pfd, tmp, 0)
	}
	return err
}

// meta gives open file fd the session's owner (as root), xattrs, mode
// and times, in that order: chown clears set-id bits.
func (a *applier) meta(fd int, p string, up *unix.Statx_t) error {
	src, err := a.openFile(a.upper, p)
	if err != nil {
		return err
	}
	defer src.Close()
	return a.metaFrom(src, fd, p, up)
}

// metaFrom is meta with the session's version open already as src.
func (a *applier) metaFrom(src *os.File, fd int, p string, up *unix.Statx_t) error {
	// Never a set-id bit or a file capability: what a session made must
	// not become a way to the host's root (or to anyone's ids) by being
	// applied. A directory's set-gid bit only picks a group, and stays.
	mode := uint32(up.Mode & 0o7777)
	if up.Mode&unix.S_IFMT != unix.S_IFDIR {
		mode &^= unix.S_ISUID | unix.S_ISGID
	}
	if a.root {
		if err := unix.Fchown(fd, int(up.Uid), int(up.Gid)); err != nil {
			return err
		}
	}
	if err := xattrsFrom(src, fd, p); err != nil {
		return err
	}
	if err := unix.Fchmod(fd, mode); err != nil {
		return err
	}
	ts := []unix.Timespec{{Sec: up.Atime.Sec, Nsec: int64(up.Atime.Nsec)}, {Sec: up.Mtime.Sec, Nsec: int64(up.Mtime.Nsec)}}
	return unix.UtimesNanoAt(unix.AT_FDCWD, "/proc/self/fd/"+strconv.Itoa(fd), ts, 0)
}

// xattrsFrom copies the extended attributes of src (the session's p) to
// fd, without overlay's own and incarnate's marks.
func xattrsFrom(src *os.File, fd int, p string) error {
	names, err := fsutil.ListXattrsFd(src)
	if err != nil {
		return err
	}
	for _, n := range names {
		if fsutil.IsOverlayXattr(n) || strings.HasPrefix(n, "user.incarnate.") || n == "security.capability" {
			continue
		}
		v, err := fsutil.GetXattrFd(src, n, nil)
		if err != nil {
			return err
		}
		if err := unix.Fsetxattr(fd, n, v, 0); err != nil && !errors.Is(err, unix.EPERM) && !errors.Is(err, unix.ENOTSUP) {
			return &os.PathError{Op: "setxattr " + n, Path: p, Err: err}
		}
	}
	return nil
}

// retime sets the times of the directories applied again, deepest
// first: what landed inside them moved their mtimes.
func (a *applier) retime(done []Step) {
	for i := len(done) - 1; i >= 0; i-- {
		p := done[i].Path
		up, err := a.upperStat(p)
		if err != nil || up.Mode&unix.S_IFMT != unix.S_IFDIR || done[i].Kind == Deleted {
			continue
		}
		hp, ok := a.target(p)
		if !ok {
			continue
		}
		fd, err := openBeneath(a.host, rel(hp))
		if err != nil {
			continue
		}
		ts := []unix.Timespec{{Sec: up.Atime.Sec, Nsec: int64(up.Atime.Nsec)}, {Sec: up.Mtime.Sec, Nsec: int64(up.Mtime.Nsec)}}
		_ = unix.UtimesNanoAt(unix.AT_FDCWD, "/proc/self/fd/"+strconv.Itoa(fd), ts, 0)
		unix.Close(fd)
	}
}

// drop removes applied entries from the upper dir, deepest first: the
// session then sees the host's version, now the same. A directory goes
// only once empty (a conflict left inside keeps it).
func (a *applier) drop(done []Step) {
	for i := len(done) - 1; i >= 0; i-- {
		p := done[i].Path
		if p == "/" {
			continue
		}
		dfd, err := a.upperParent(p)
		if err != nil {
			continue
		}
		name := path.Base(p)
		var st unix.Stat_t
		if unix.Fstatat(dfd, name, &st, unix.AT_SYMLINK_NOFOLLOW) == nil {
			if st.Mode&unix.S_IFMT == unix.S_IFDIR {
				if a.f.fuse {
					if sub, err := openBeneath(dfd, name); err == nil {
						_ = unix.Unlinkat(sub, layers.OpaqueWhiteout, 0)
						unix.Close(sub)
					}
				}
				_ = unix.Unlinkat(dfd, name, unix.AT_REMOVEDIR)
			} else {
				_ = unix.Unlinkat(dfd, name, 0)
			}
		}
	}
}
