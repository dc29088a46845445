package session

import (
	"fmt"
	"hash/fnv"
	"path/filepath"

	"golang.org/x/sys/unix"

	"github.com/incarnate-dev/incarnate/layers"
	"github.com/incarnate-dev/incarnate/sandbox"
)

// rootOps build session m's root inside its keeper: the overlay of its
// upper dir on its base, the kernel file systems, the host's name
// resolution, the pivot and the host name.
func (s *Store) rootOps(m *Meta, ids *IDRange) ([]sandbox.Op, error) {
	base, err := s.Layers.Get(m.Base)
	if err != nil {
		return nil, err
	}
	onHost := hasHost(base)
	if onHost && m.UserXattr && !m.Fuse {
		return nil, layers.ErrHostNeedsRoot
	}
	if err := s.checkBinds(m.Binds); err != nil {
		return nil, fmt.Errorf("session %q: %w", m.Name, err)
	}
	dir := s.Dir(m.Name)
	root := filepath.Join(dir, "root")
	ops := []sandbox.Op{
		sandbox.MakeRslave{},
		// The keeper's own view of its PID namespace, which the spawner's
		// id maps are written through; detached with the old root.
		sandbox.MountProc{Target: "/proc"},
		// Before the spawner, which is born in the session's cgroup.
		sandbox.Cgroup{ID: s.cgroupID(m.Name), Pids: m.Pids, Memory: m.Memory, Optional: true},
		sandbox.StartSpawner{},
	}
	lowers := s.Layers.LowerDirs(base)
	if onHost {
		mounts, err := s.hostRootOps(m, lowers, ids)
		if err != nil {
			return nil, err
		}
		ops = append(ops, mounts...)
	} else {
		ops = append(ops, sandbox.MountOverlay{
			Target: root, Lowers: lowers, Upper: filepath.Join(dir, "upper"), Work: filepath.Join(dir, "work"),
			UserXattr: m.UserXattr, IDMap: ids != nil,
		})
	}
	ops = append(ops,
		sandbox.MountProc{Target: root + "/proc"},
		sandbox.MountDev{Target: root + "/dev"},
		sandbox.MountSysfs{Target: root + "/sys"},
	)
	if onHost {
		ops = append(ops, s.hiddenOps(root)...)
	} else {
		// Name resolution works out of the box: the host's view,
		// read-only. (On the host's own "/" the files are there already,
		// and the session may edit them.)
		for _, f := range nameFiles {
			ops = append(ops, sandbox.Bind{Src: f, Dst: root + f, Optional: true})
		}
	}
	for i, b := range m.Binds {
		if b.Cow {
			cow, err := s.cowOverlay(m, i, ids != nil)
			if err != nil {
				return nil, err
			}
			ops = append(ops, cow)
			continue
		}
		ops = append(ops, sandbox.Bind{Src: b.Src, Dst: root + b.Dst, Writable: !b.ReadOnly, Resolved: true})
	}
	if m.Net == "none" {
		ops = append(ops, sandbox.LoopbackUp{})
	}
	hostname := m.Hostname
	if hostname == "" {
		hostname = m.Name
	}
	return append(ops,
		sandbox.NewPivotRoot(root),
		sandbox.Hostname{Name: hostname},
		sandbox.Dumpable{On: false},
	), nil
}

// cowOverlay is the overlay that shows session m's bind i copy-on-write:
// its source as the lower, the matching directory of the upper dir as
// the upper, so the changes are the session's like any other.
func (s *Store) cowOverlay(m *Meta, i int, idmapped bool) (sandbox.Op, error) {
	b := m.Binds[i]
	dir := s.Dir(m.Name)
	upper := filepath.Join(dir, "upper")
	base, err := s.Layers.Get(m.Base)
	if err != nil {
		return nil, err
	}
	// The directories above DST take the base's mode and owner.
	if err := mkdirBeneath(upper, b.Dst, s.Layers.LowerDirs(base)...); err != nil {
		return nil, fmt.Errorf("--bind %s:%s:cow: %w", b.Src, b.Dst, err)
	}
	work := fmt.Sprintf("/cow/%d", i)
	if err := mkdirBeneath(filepath.Join(dir, "work"), work); err != nil {
		return nil, err
	}
	return sandbox.MountOverlay{
		Target: filepath.Join(dir, "root") + b.Dst, Lowers: []string{b.Src}, Upper: upper + b.Dst,
		Work: filepath.Join(dir, "work") + work, Home: dir, UserXattr: m.UserXattr, IDMap: idmapped,
	}, nil
}

// cgroupID names session name's cgroup, the same for every start and
// apart from other stores' sessions of that name.
func (s *Store) cgroupID(name string) string {
	h := fnv.New64a()
	fmt.Fprintf(h, "%s\x00%s", s.Root, name)
	return fmt.Sprintf("%016x", h.Sum64())
}

// nameFiles are the host's files a session reads names through.
var nameFiles = []string{"/etc/resolv.conf", "/etc/hosts"}

// mountPoints are the paths rootOps mounts on in session m's root, and
// the directories above them: those its base lacks are made in the upper
// dir, marked with sandbox.MountpointXattr.
func mountPoints(m *Meta) map[string]bool {
	points := map[string]bool{}
	targets := append([]string{"/proc", "/dev", "/sys", aptConfPath}, nameFiles...)
	for _, b := range m.Binds {
		targets = append(targets, b.Dst)
	}
	for _, t := range targets {
		for ; t != "/" && t != "." && !points[t]; t = filepath.Dir(t) {
			points[t] = true
		}
	}
	return points
}

// cloneflags are the namespaces session m's keeper is created in.
func cloneflags(m *Meta) uintptr {
	if m.Net == "none" {
		return sandbox.Namespaces | unix.CLONE_NEWNET
	}
	return sandbox.Namespaces
}

// confinement is what session m's keeper imposes on every process it
// starts, whoever asks: a user namespace (the session's own id range for
// root's sessions, ids the user has already for an ordinary user's), no
// way to gain privileges, no fd but 0-2, a keyring of its own, Landlock
// scoping, a bounding set and the seccomp filter.
func confinement(m *Meta, ids *IDRange) []sandbox.Op {
	userns := sandbox.UserNamespace{}
	if ids != nil {
		userns = sandbox.UserNamespace{UID: ids.UID, GID: ids.UID, Count: RangeSize}
	}
	return []sandbox.Op{
		userns,
		sandbox.NoNewPrivs{},
		sandbox.CloseFds{},
		sandbox.FreshKeyring{},
		sandbox.LandlockScope{},
		sandbox.CapBounds{Nested: m.Nested},
		// Last: it refuses the calls the ones before make.
		sandbox.Seccomp{Nested: m.Nested},
	}
}

// sameDevice reports whether a and b are on one file system, i.e. whether
// a is seen through an overlay whose lower dir is b.
func sameDevice(a, b string) bool {
	var sa, sb unix.Stat_t
	return unix.Stat(a, &sa) == nil && unix.Stat(b, &sb) == nil && sa.Dev == sb.Dev
}
