package session

import (
	"bufio"
	"errors"
	"fmt"
	"hash/fnv"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"

	"github.com/incarnate-dev/incarnate/internal/fsutil"
)

// Root's sessions run as an id range of their own: ids 0-65535 inside
// are 65536 host ids that no other live session holds, so root inside is
// nobody on the host. The ranges are slots of the area systemd reserves
// for containers (524288-1879048191, see systemd's UIDS-GIDS.md).
//
// The upper dir keeps the ids the session sees (the layers are idmapped
// mounts), so a session may get another range on its next start without
// a chown: a range is held only while the session's keeper lives, by a
// lock on /run/incarnate/idranges/SLOT that the keeper inherits. The slot
// a session had last is kept in sessions/NAME/idrange and tried first.
const (
	rangeFirst = 524288
	rangeLast  = 1879048191
	RangeSize  = 65536
	rangeSlots = (rangeLast - rangeFirst + 1) / RangeSize
)

// rangeLockDir holds one lock file per slot in use, machine-wide, so that
// sessions of different stores never share a range.
var rangeLockDir = "/run/incarnate/idranges"

// IDRange is the host ids a session's ids 0-65535 are, while it runs.
type IDRange struct {
	Slot int `json:"slot"`
	UID  int `json:"uid"` // the first host uid, and gid
}

func (s *Store) rangePath(name string) string { return filepath.Join(s.Dir(name), "idrange") }

// LastRange is the id range session name had when it last ran, if any.
func (s *Store) LastRange(name string) (*IDRange, error) {
	var r IDRange
	if err := fsutil.ReadJSON(s.rangePath(name), &r); err != nil {
		return nil, err
	}
	return &r, nil
}

// claimRange finds a free range for session name and locks it; the lock
// goes to the keeper, which holds it for as long as it lives.
func (s *Store) claimRange(name string) (*IDRange, *os.File, error) {
	if err := mkdirPrivate(rangeLockDir); err != nil {
		return nil, nil, fmt.Errorf("id ranges: %w", err)
	}
	taken := subIDRanges()
	first := preferredSlot(s.Root, name)
	if last, err := s.LastRange(name); err == nil && last.Slot >= 0 && last.Slot < rangeSlots {
		first = last.Slot
	}
	for i := 0; i < rangeSlots; i++ {
		slot := (first + i) % rangeSlots
		r := &IDRange{Slot: slot, UID: rangeFirst + slot*RangeSize}
		if overlaps(taken, r.UID) {
			continue
		}
		f, err := lockSlot(slot)
		if errors.Is(err, unix.EWOULDBLOCK) {
			continue
		}
		if err != nil {
			return nil, nil, err
		}
		if last, err := s.LastRange(name); err != nil || *last != *r {
			if err := fsutil.WriteJSON(s.rangePath(name), r); err != nil {
				f.Close()
				return nil, nil, err
			}
		}
		return r, f, nil
	}
	return nil, nil, errors.New("every id range for sessions is in use; stop a session and try again")
}

// preferredSlot spreads sessions over the slots by store and name.
func preferredSlot(root, name string) int {
	h := fnv.New32a()
	fmt.Fprintf(h, "%s\x00%s", root, name)
	return int(h.Sum32() % rangeSlots)
}

func lockSlot(slot int) (*os.File, error) {
	path := filepath.Join(rangeLockDir, strconv.Itoa(slot))
	fd, err := unix.Open(path, unix.O_RDWR|unix.O_CREAT|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0o600)
	if err != nil {
		return nil, &os.PathError{Op: "open", Path: path, Err: err}
	}
	if err := unix.Flock(fd, unix.LOCK_EX|unix.LOCK_NB); err != nil {
		unix.Close(fd)
		return nil, err
	}
	return os.NewFile(uintptr(fd), path), nil
}

// mkdirPrivate makes dir and its parent, root's and closed to others,
// and refuses one that someone else could have planted.
func mkdirPrivate(dir string) error {
	for _, d := range []string{filepath.Dir(dir), dir} {
		if err := os.Mkdir(d, 0o700); err != nil && !errors.Is(err, os.ErrExist) {
			return err
		}
		var st unix.Stat_t
		if err := unix.Lstat(d, &st); err != nil {
			return &os.PathError{Op: "lstat", Path: d, Err: err}
		}
		if st.Mode&unix.S_IFMT != unix.S_IFDIR || st.Uid != 0 || st.Mode&0o022 != 0 {
			return fmt.Errorf("%q is not a directory of root's that only root can write; remove it", d)
		}
	}
	return nil
}

// subIDRanges are the ranges /etc/subuid and /etc/subgid give users: a
// session's range must not be one a user's own containers use.
func subIDRanges() [][2]int {
	var out [][2]int
	for _, file := range []string{"/etc/subuid", "/etc/subgid"} {
		f, err := os.Open(file)
		if err != nil {
			continue
		}
		sc := bufio.NewScanner(f)
		for sc.Scan() {
			fs := strings.Split(strings.TrimSpace(sc.Text()), ":")
			if len(fs) != 3 {
				continue
			}
			start, err1 := strconv.Atoi(fs[1])
			count, err2 := strconv.Atoi(fs[2])
			if err1 == nil && err2 == nil && count > 0 {
				out = append(out, [2]int{start, start + count})
			}
		}
		f.Close()
	}
	return out
}

func overlaps(ranges [][2]int, first int) bool {
	for _, r := range ranges {
		if first < r[1] && r[0] < first+RangeSize {
			return true
		}
	}
	return false
}
