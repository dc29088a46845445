package session

import (
	"fmt"
	"os"
	"path/filepath"

	"golang.org/x/sys/unix"

	"incarnate/layers"
	"incarnate/sandbox"
)

// RunOptions shape the process started in a session.
type RunOptions struct {
	Argv   []string
	Env    []string
	Dir    string // working directory inside; "/" when empty
	Umask  uint32
	Stdin  *os.File
	Stdout *os.File
	Stderr *os.File
}

// Run runs a command in session name and returns its exit status.
func (s *Store) Run(name string, o RunOptions) (int, error) {
	m, err := s.Get(name)
	if err != nil {
		return 0, err
	}
	rootless := os.Geteuid() != 0
	if rootless != m.UserXattr {
		return 0, fmt.Errorf("session %q was made %s and can only be entered that way", name, privilegeWord(m.UserXattr))
	}
	spec, err := s.Spec(m, o)
	if err != nil {
		return 0, err
	}
	lk, err := s.lock(name)
	if err != nil {
		return 0, err
	}
	defer lk.release()
	if err := s.touchEntered(name); err != nil {
		return 0, err
	}
	cmd := &sandbox.Cmd{Spec: spec, Cloneflags: sandbox.Namespaces, Rootless: rootless,
		Stdin: o.Stdin, Stdout: o.Stdout, Stderr: o.Stderr}
	return cmd.Run()
}

func privilegeWord(userxattr bool) string {
	if userxattr {
		return "by an ordinary user"
	}
	return "by root"
}

// Spec is the sandbox spec that runs o in session m: the overlay of the
// session's upper dir on its base, the kernel file systems, the pivot,
// then a process with no way to gain privileges.
func (s *Store) Spec(m *Meta, o RunOptions) (sandbox.Spec, error) {
	base, err := s.Layers.Get(m.Base)
	if err != nil {
		return sandbox.Spec{}, err
	}
	if base.Builtin() && m.UserXattr {
		return sandbox.Spec{}, layers.ErrHostNeedsRoot
	}
	dir := s.Dir(m.Name)
	root := filepath.Join(dir, "root")
	rootOps := []sandbox.Op{
		sandbox.ParentDeathSig{Signal: unix.SIGKILL},
		sandbox.MakeRslave{},
		sandbox.MountOverlay{
			Target:    root,
			Lowers:    s.Layers.LowerDirs(base),
			Upper:     filepath.Join(dir, "upper"),
			Work:      filepath.Join(dir, "work"),
			UserXattr: m.UserXattr,
		},
		sandbox.MountProc{Target: root + "/proc"},
		sandbox.MountDev{Target: root + "/dev"},
		sandbox.MountSysfs{Target: root + "/sys"},
	}
	if base.Builtin() && sameDevice(s.Root, "/") {
		// The host's "/" holds the store itself: hide it, so a session
		// cannot read other sessions' files through its base.
		rootOps = append(rootOps, sandbox.MountTmpfs{Target: filepath.Join(root, s.Root), Mode: 0o700})
	}
	// Name resolution works out of the box: the host's view, read-only.
	for _, f := range []string{"/etc/resolv.conf", "/etc/hosts"} {
		rootOps = append(rootOps, sandbox.Bind{Src: f, Dst: root + f, Optional: true})
	}
	rootOps = append(rootOps,
		sandbox.NewPivotRoot(root),
		sandbox.Hostname{Name: m.Name},
		sandbox.Dumpable{On: false},
	)
	cwd := o.Dir
	if cwd == "" {
		cwd = "/"
	}
	return sandbox.Spec{
		Root: rootOps,
		Process: []sandbox.Op{
			sandbox.NoNewPrivs{},
			sandbox.CloseFds{},
			sandbox.Umask{Mode: o.Umask},
			sandbox.Chdir{Path: cwd},
			sandbox.NewSession{},
			sandbox.ParentDeathSig{Signal: unix.SIGKILL},
		},
		Argv: o.Argv,
		Env:  append(o.Env, "INCARNATE_SESSION="+m.Name),
	}, nil
}

// sameDevice reports whether a and b are on one file system, i.e. whether
// a is seen through an overlay whose lower dir is b.
func sameDevice(a, b string) bool {
	var sa, sb unix.Stat_t
	return unix.Stat(a, &sa) == nil && unix.Stat(b, &sb) == nil && sa.Dev == sb.Dev
}
