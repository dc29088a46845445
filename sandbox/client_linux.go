package sandbox

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// KeeperConfig starts a session's keeper.
type KeeperConfig struct {
	// Root builds the session's root, as in Spec.Root.
	Root []Op
	// Note, when set, gets what the keeper says of the root it built.
	Note func(string)
	// Process is the confinement the keeper imposes on every process it
	// starts (UserNamespace among it, and applied first).
	Process    []Op
	Cloneflags uintptr
	Rootless   bool
	// Socket is the path the keeper listens on. Any file there is stale
	// (the caller holds Lock, which a live keeper would) and is replaced.
	Socket string
	// Lock is the session's lock; the keeper holds it for as long as it
	// lives, so nothing else can change the session meanwhile.
	Lock *os.File
	// RangeLock holds the session's id range, for as long as the keeper
	// lives; nil when it has none (an ordinary user's session).
	RangeLock *os.File
	// Linger: as Spec.Linger.
	Linger time.Duration
}

// StartKeeper starts a keeper and returns once it has its spec: its
// socket takes connections from then on, and answers them once the root
// is built (so a first request need not wait for Wait). Wait says how
// the start went.
func StartKeeper(cfg KeeperConfig) (*Starting, error) {
	spec := Spec{Root: cfg.Root, Process: cfg.Process, Socket: filepath.Base(cfg.Socket), Linger: cfg.Linger}
	if err := spec.validateOps(); err != nil {
		return nil, err
	}
	ln, err := listen(cfg.Socket)
	if err != nil {
		return nil, err
	}
	defer ln.Close()
	specR, specW, err := os.Pipe()
	if err != nil {
		return nil, err
	}
	defer specW.Close()
	errR, errW, err := os.Pipe()
	if err != nil {
		specR.Close()
		return nil, err
	}
	null, err := os.OpenFile(os.DevNull, os.O_RDWR, 0)
	if err != nil {
		errR.Close()
		return nil, err
	}
	defer null.Close()
	attr := &syscall.SysProcAttr{Cloneflags: cfg.Cloneflags, Setsid: true}
	mapCallerToRoot(attr, cfg.Rootless)
	// No parent-death signal: the keeper outlives the client that started
	// it whenever another one has joined.
	// The socket's directory, by fd: the keeper unlinks its socket there
	// on its way out, when no path of the host's is in its reach.
	sockDir, err := os.Open(filepath.Dir(cfg.Socket))
	if err != nil {
		errR.Close()
		return nil, err
	}
	defer sockDir.Close()
	rangeLock := null
	if cfg.RangeLock != nil {
		rangeLock = cfg.RangeLock
	}
	files := []uintptr{null.Fd(), null.Fd(), null.Fd(), specR.Fd(), errW.Fd(), ln.Fd(), cfg.Lock.Fd(), rangeLock.Fd(), sockDir.Fd()}
	exe, exeFile := keeperExe()
	// One P: the keeper's goroutines spend their lives in blocking
	// syscalls, which do not hold one, and a second P's caches and the
	// threads it wakes cost a cold start about 100 page faults.
	pid, err := syscall.ForkExec(exe, []string{keeperArg0}, &syscall.ProcAttr{
		Env: []string{"GOMAXPROCS=1"}, Files: files, Sys: attr,
	})
	if exeFile != nil {
		exeFile.Close()
	}
	specR.Close()
	errW.Close()
	if err != nil {
		errR.Close()
		return nil, fmt.Errorf("start keeper: %w", err)
	}
	go reap(pid) // a long-lived caller must not collect zombies
	payload, err := json.Marshal(spec)
	if err != nil {
		errR.Close()
		return nil, err
	}
	_, _ = specW.Write(payload)
	return &Starting{report: errR, note: cfg.Note}, nil
}

// Starting is a keeper on its way up.
type Starting struct {
	report *os.File
	note   func(string)
	done   bool
	err    error
}

// Wait returns once the keeper's root is built and it listens, or with
// the *OpError of the op that failed. What the keeper said of the root
// goes to the config's Note first. It may be called again: it says the
// same.
func (s *Starting) Wait() error {
	if s.done {
		return s.err
	}
	s.done = true
	defer s.report.Close()
	rep, err := readReport(s.report)
	switch {
	case rep != nil && rep.Failure != nil:
		s.err = rep.Failure
	case rep != nil && rep.Ready != nil:
		for _, n := range rep.Notes {
			if s.note != nil {
				s.note(n)
			}
		}
	case err != nil:
		s.err = err
	default:
		s.err = errors.New("keeper ended without a report")
	}
	return s.err
}

// mapCallerToRoot gives a rootless stage a user namespace that maps the
// caller to root. A caller that is root of its own user namespace already
// (ReexecWithSubIDs) needs none: the stage shares that one and its maps.
func mapCallerToRoot(attr *syscall.SysProcAttr, rootless bool) {
	if !rootless || os.Geteuid() == 0 {
		return
	}
	attr.Cloneflags |= unix.CLONE_NEWUSER
	attr.UidMappings = []syscall.SysProcIDMap{{ContainerID: 0, HostID: os.Getuid(), Size: 1}}
	attr.GidMappings = []syscall.SysProcIDMap{{ContainerID: 0, HostID: os.Getgid(), Size: 1}}
	attr.GidMappingsEnableSetgroups = false
}

// listen makes the keeper's socket, replacing a stale one.
func listen(path string) (*os.File, error) {
	fd, err := unix.Socket(unix.AF_UNIX, unix.SOCK_SEQPACKET|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return nil, err
	}
	f := os.NewFile(uintptr(fd), path)
	if err := os.Remove(path); err != nil && !errors.Is(err, os.ErrNotExist) {
		f.Close()
		return nil, err
	}
	if err := unix.Bind(fd, &unix.SockaddrUnix{Name: path}); err != nil {
		f.Close()
		return nil, &os.PathError{Op: "bind", Path: path, Err: err}
	}
	if err := unix.Listen(fd, 64); err != nil {
		f.Close()
		return nil, &os.PathError{Op: "listen", Path: path, Err: err}
	}
	return f, nil
}

// Conn is a connection to a keeper.
type Conn struct {
	pc    *packetConn
	relay *relay // the streams of a process without a terminal
	// StartedIn: where the process started, when not in the Dir asked.
	StartedIn string
	// Started, when set, is called once the process runs and before any
	// of its output is passed on, so what it says comes first.
	Started func(c *Conn)
	// Stopped, once Wait returns: why the process ended, when the
	// session was stopped from outside (Reply.Stopped).
	Stopped string
}

// Dial connects to the keeper on path, or returns ErrNoKeeper.
func Dial(path string) (*Conn, error) {
	fd, err := unix.Socket(unix.AF_UNIX, unix.SOCK_SEQPACKET|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return nil, err
	}
	err = unix.Connect(fd, &unix.SockaddrUnix{Name: path})
	if err == unix.ENOENT || err == unix.ECONNREFUSED {
		unix.Close(fd)
		return nil, ErrNoKeeper
	}
	if err != nil {
		unix.Close(fd)
		return nil, &os.PathError{Op: "connect", Path: path, Err: err}
	}
	pc, err := newPacketConn(fd, path)
	if err != nil {
		return nil, err
	}
	return &Conn{pc: pc}, nil
}

// PeerPID is the keeper's process id, as this process sees it (0 when
// the kernel cannot say).
func (c *Conn) PeerPID() int {
	cred, err := c.pc.peerCred()
	if err != nil {
		return 0
	}
	return int(cred.Pid)
}

// Close hangs up.
func (c *Conn) Close() error {
	if c.relay != nil {
		c.relay.abandon()
	}
	return c.pc.Close()
}

// Spawn starts a process. Without a terminal, stdin, stdout and stderr
// are relayed to and from it through pipes (nil ones are empty or
// discarded); with one, the returned file is the pty master. A keeper
// that went away before answering gives ErrNoKeeper: the caller starts a
// new one.
func (c *Conn) Spawn(req SpawnRequest, stdin, stdout, stderr *os.File) (*os.File, error) {
	if err := req.validate(); err != nil {
		return nil, err
	}
	var r *relay
	var fds []int
	if !req.Tty {
		var err error
		if r, err = newRelay(stdin, stdout, stderr); err != nil {
			return nil, err
		}
		fds = r.inside()
	}
	err := c.pc.send(Request{Spawn: &req}, fds...)
	if r != nil {
		r.closeInside()
	}
	if err != nil {
		r.abandon()
		return nil, keeperGone(err)
	}
	var rep Reply
	got, err := c.pc.recv(&rep)
	if err != nil {
		r.abandon()
		return nil, keeperGone(err)
	}
	if rep.Error != nil {
		closeAll(got)
		r.abandon()
		return nil, rep.Error
	}
	c.StartedIn = rep.StartedIn
	if c.Started != nil {
		c.Started(c)
	}
	if req.Tty {
		if len(got) != 1 {
			closeAll(got)
			return nil, errors.New("keeper sent no terminal")
		}
		// Non-blocking, so the runtime poller owns it and reads can be
		// given a deadline when the process is done.
		_ = unix.SetNonblock(got[0], true)
		return os.NewFile(uintptr(got[0]), "pty"), nil
	}
	closeAll(got)
	c.relay = r
	r.start()
	return nil, nil
}

// keeperGone maps a broken connection to ErrNoKeeper.
func keeperGone(err error) error {
	if errors.Is(err, errPeerClosed) || errors.Is(err, unix.ECONNRESET) || errors.Is(err, unix.EPIPE) {
		return ErrNoKeeper
	}
	return err
}

// Signal passes sig on to the spawned process's group.
func (c *Conn) Signal(sig syscall.Signal) error {
	return c.pc.send(Request{Signal: int(sig)})
}

// Wait returns the spawned process's exit status, once what it wrote
// has been passed on.
func (c *Conn) Wait() (int, error) {
	for {
		var rep Reply
		fds, err := c.pc.recv(&rep)
		closeAll(fds)
		if err != nil {
			if c.relay != nil {
				c.relay.finish()
			}
			return 0, fmt.Errorf("lost the session's keeper: %w", err)
		}
		if rep.Exit != nil {
			if c.relay != nil {
				c.relay.finish()
			}
			c.Stopped = rep.Stopped
			return *rep.Exit, nil
		}
	}
}

// Status returns how many processes the keeper has started that still run.
func (c *Conn) Status() (int, error) {
	return c.ask(Request{Status: true})
}

// Release asks a keeper that lingers with nothing running to go now,
// and reports whether it goes. One that runs something stays.
func (c *Conn) Release() (bool, error) {
	if err := c.pc.send(Request{Release: true}); err != nil {
		return false, keeperGone(err)
	}
	var rep Reply
	fds, err := c.pc.recv(&rep)
	closeAll(fds)
	if err != nil {
		return false, keeperGone(err)
	}
	return rep.Released, nil
}

// Stop asks the keeper to end everything: SIGHUP and SIGTERM, then
// SIGKILL after grace; why is what its clients are told.
func (c *Conn) Stop(graceMillis int, why string) (int, error) {
	return c.ask(Request{Stop: &StopRequest{GraceMillis: graceMillis, Why: why}})
}

func (c *Conn) ask(req Request) (int, error) {
	if err := c.pc.send(req); err != nil {
		return 0, keeperGone(err)
	}
	var rep Reply
	fds, err := c.pc.recv(&rep)
	closeAll(fds)
	if err != nil {
		return 0, keeperGone(err)
	}
	return rep.Children, nil
}
