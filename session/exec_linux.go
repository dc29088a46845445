package session

import (
	"errors"
	"fmt"
	"os"
	"os/signal"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"github.com/incarnate-dev/incarnate/internal/prestage"
	"github.com/incarnate-dev/incarnate/layers"
	"github.com/incarnate-dev/incarnate/sandbox"
)

// ExecOptions shape a process started in a session.
type ExecOptions struct {
	Argv []string
	// Fallback commands are tried when Argv[0] is not in the session.
	Fallback [][]string
	Env      []string
	Dir      string // working directory inside; "/" when empty
	DirElse  string // used when Dir does not exist inside ("/" if neither)
	Umask    uint32
	// Tty asks for a fresh pty from the session's own devpts, sized
	// Rows x Cols before the process starts.
	Tty        bool
	Rows, Cols uint16
	// The process's streams when it has no terminal.
	Stdin, Stdout, Stderr *os.File
}

// ErrNeedsUserNS: the work asked for needs the user namespace this
// process is outside of (Store.OutsideUserNS).
var ErrNeedsUserNS = errors.New("this needs the sessions' user namespace")

// KeeperListens reports whether session name's keeper socket is there: a
// keeper runs, or one died without removing it.
func (s *Store) KeeperListens(name string) bool {
	sock, err := s.socketPath(name)
	if err != nil {
		return false
	}
	_, err = os.Lstat(sock)
	return err == nil
}

// joinWait bounds how long a client waits for a keeper that another
// client is starting, or that is on its way out.
const joinWait = 10 * time.Second

// Exec starts a process in session name through its keeper, starting the
// keeper first if none runs. It returns the connection to wait on and,
// with a terminal, the pty master.
func (s *Store) Exec(name string, o ExecOptions) (*sandbox.Conn, *os.File, error) {
	m, err := s.Get(name)
	if err != nil {
		return nil, nil, err
	}
	if sandbox.Rootless() != m.UserXattr {
		return nil, nil, fmt.Errorf("session %q was made %s and can only be entered that way", name, privilegeWord(m.UserXattr))
	}
	sock, err := s.socketPath(name)
	if err != nil {
		return nil, nil, err
	}
	req := sandbox.SpawnRequest{
		Argv: o.Argv, Fallback: o.Fallback, Env: append(o.Env, sessionVar(name)),
		Dir: o.Dir, DirElse: o.DirElse, Umask: o.Umask,
		Tty: o.Tty, Rows: o.Rows, Cols: o.Cols,
	}
	if err := s.touchEntered(name); err != nil {
		return nil, nil, err
	}
	// A keeper this call started: its first request goes as soon as it
	// has its spec, and what it says of its start is heard before the
	// process's first output, or instead of the spawn's error.
	var up *keeperUp
	for deadline := time.Now().Add(joinWait); ; {
		started := func(c *sandbox.Conn) {
			_ = up.wait()
			if c.StartedIn != "" {
				Notice(fmt.Sprintf("%s is not in session %s: starting in %s", o.Dir, name, c.StartedIn))
			}
		}
		conn, master, err := spawn(sock, req, o, started)
		if werr := up.wait(); werr != nil {
			if conn != nil {
				conn.Close()
			}
			return nil, nil, werr
		}
		up = nil
		if !errors.Is(err, sandbox.ErrNoKeeper) {
			return conn, master, err
		}
		if s.OutsideUserNS {
			return nil, nil, ErrNeedsUserNS
		}
		up, err = s.startKeeper(m, sock)
		if err != nil && !errors.Is(err, layers.ErrInUse) {
			return nil, nil, err
		}
		if err != nil && time.Now().After(deadline) {
			return nil, nil, fmt.Errorf("session %q: its keeper does not answer on %s; end it with `incarnate stop %s`", name, sock, name)
		}
		if err != nil {
			// Another client is starting the keeper, or the last one is
			// exiting: either way the lock frees in a moment.
			time.Sleep(5 * time.Millisecond)
		}
	}
}

// spawn asks the keeper listening on sock, if any, to start the process.
func spawn(sock string, req sandbox.SpawnRequest, o ExecOptions, started func(*sandbox.Conn)) (*sandbox.Conn, *os.File, error) {
	conn, err := sandbox.Dial(sock)
	if err != nil {
		return nil, nil, err
	}
	conn.Started = started
	master, err := conn.Spawn(req, o.Stdin, o.Stdout, o.Stderr)
	if err != nil {
		conn.Close()
		return nil, nil, err
	}
	return conn, master, nil
}

// keeperUp is a keeper startKeeper started, until it has said how its
// start went.
type keeperUp struct {
	starting *sandbox.Starting
	ready    func() // once it is up: its ticket
}

// wait is Starting.Wait, which says the same when asked again; the
// first time it says the keeper is up, the ticket goes too. Nothing for
// a nil keeperUp.
func (u *keeperUp) wait() error {
	if u == nil {
		return nil
	}
	err := u.starting.Wait()
	if err == nil && u.ready != nil {
		u.ready()
		u.ready = nil
	}
	return err
}

// startKeeper starts session m's keeper, which takes over the session's
// lock. ErrInUse means another process holds the lock.
func (s *Store) startKeeper(m *Meta, sock string) (*keeperUp, error) {
	lk, err := s.lock(m.Name)
	if err != nil {
		return nil, err
	}
	defer lk.release()
	if err := s.ensureUpper(m.Name); err != nil {
		return nil, err
	}
	var ids *IDRange
	var rangeLock *os.File
	if !m.UserXattr {
		if ids, rangeLock, err = s.claimRange(m.Name); err != nil {
			return nil, err
		}
		defer rangeLock.Close() // the keeper holds its own copy
	}
	ops, err := s.rootOps(m, ids)
	if err != nil {
		return nil, err
	}
	if m.Fuse && m.UserXattr {
		s.makeStubs(m)
	}
	// The last keeper's ticket, if it died without taking it along, is
	// not this one's.
	_ = os.Remove(prestage.TicketPath(sock))
	starting, err := sandbox.StartKeeper(sandbox.KeeperConfig{
		Root: ops, Process: confinement(m, ids), Cloneflags: cloneflags(m), Rootless: m.UserXattr,
		Socket: sock, Lock: lk.f, RangeLock: rangeLock, Linger: s.Linger, Note: Notice,
	})
	if err != nil {
		return nil, err
	}
	return &keeperUp{starting: starting, ready: func() {
		s.writeTicket(m, sock)
		// Beside the session's start, on the other core: best effort.
		go s.sweepSockets()
	}}, nil
}

// writeTicket leaves beside the keeper's socket what the pre-runtime
// stage needs to run a plain `run`, or `enter`, through it (see
// internal/prestage).
// Best effort: without a ticket, the Go path does it all.
func (s *Store) writeTicket(m *Meta, sock string) {
	var st unix.Stat_t
	if err := unix.Lstat(sock, &st); err != nil {
		return
	}
	t := prestage.Ticket{
		EUID: uint32(sandbox.HostUID()), SockDev: st.Dev, SockIno: st.Ino,
		Root: s.Root, Name: m.Name, Entered: s.enteredPath(m.Name),
		Head: envHead(""), Pass: passedVars, Prefixes: passedPrefixes, Specs: envSpecs(m, nil),
		Tail:  []string{sessionVar(m.Name)},
		Shell: m.Shell,
	}
	if s.ShellConfig != nil {
		t.Config, t.ConfigShell = s.ShellConfig()
		t.ConfigStamp = fileStamp(t.Config)
	}
	if err := t.Write(prestage.TicketPath(sock)); err != nil {
		_ = os.Remove(prestage.TicketPath(sock))
	}
}

// fileStamp tells one version of the file at path from another: its
// inode, size and modification time, or zeros when there is none.
func fileStamp(path string) [3]uint64 {
	var st unix.Stat_t
	if path == "" || unix.Stat(path, &st) != nil {
		return [3]uint64{}
	}
	return [3]uint64{st.Ino, uint64(st.Size), uint64(st.Mtim.Sec)*1e9 + uint64(st.Mtim.Nsec)}
}

// Run runs a command in session name with plain streams, passing on the
// signals incarnate receives, and returns its exit status.
func (s *Store) Run(name string, o ExecOptions) (int, error) {
	// Installing the handlers takes a millisecond and more; it runs on the
	// other core while the keeper is reached.
	sigs := make(chan os.Signal, 16)
	notified := make(chan struct{})
	go func() { signal.Notify(sigs, sandbox.ForwardedSignals...); close(notified) }()
	defer func() { <-notified; signal.Stop(sigs); close(sigs) }()
	conn, _, err := s.Exec(name, o)
	if err != nil {
		return 0, err
	}
	defer conn.Close()
	go func() {
		for sig := range sigs {
			_ = conn.Signal(sig.(syscall.Signal))
		}
	}()
	status, err := conn.Wait()
	TellStopped(name, conn)
	return status, err
}

// TellStopped says, when conn's process ended because session name was
// stopped from outside, so: a bare status 129 says nothing.
func TellStopped(name string, conn *sandbox.Conn) {
	if note := StoppedNote(name, conn); note != "" {
		Notice(note)
	}
}

// StoppedNote is what TellStopped says, or "".
func StoppedNote(name string, conn *sandbox.Conn) string {
	if conn.Stopped == "" {
		return ""
	}
	return "session " + name + " " + conn.Stopped
}

// Shells returns how many processes started through session name's
// keeper are still running: 0 when no keeper runs.
func (s *Store) Shells(name string) int {
	sock, err := s.socketPath(name)
	if err != nil {
		return 0
	}
	if _, err := os.Lstat(sock); err != nil {
		return 0 // the common case, and one syscall instead of three
	}
	conn, err := sandbox.Dial(sock)
	if err != nil {
		return 0
	}
	defer conn.Close()
	n, _ := conn.Status()
	return n
}

// Keeper reports what runs in session name: the keeper's pid (0: none
// runs) and how many processes it started that still run.
func (s *Store) Keeper(name string) (pid, shells int) {
	conn, _ := s.dialKeeper(name)
	if conn == nil {
		return 0, 0
	}
	defer conn.Close()
	shells, _ = conn.Status()
	return conn.PeerPID(), shells
}

// EntryShells counts what runs in e's session and, when anything does,
// marks e's figures as possibly behind. The mark cannot come from the
// cache alone: an ls that ran between a client's touch of "entered" and
// its keeper taking the lock measured a free session, and cached that.
func (s *Store) EntryShells(e *Entry) int {
	if e.Meta.Damaged != "" {
		return 0
	}
	n := s.Shells(e.Meta.Name)
	if n > 0 {
		e.Stats.Stale = true
	}
	return n
}

// dialKeeper connects to session name's keeper: nil and no error when
// none runs.
func (s *Store) dialKeeper(name string) (*sandbox.Conn, error) {
	sock, err := s.socketPath(name)
	if err != nil {
		return nil, err
	}
	conn, err := sandbox.Dial(sock)
	if errors.Is(err, sandbox.ErrNoKeeper) {
		return nil, nil
	}
	return conn, err
}

// release asks session name's keeper to go if nothing runs in it, and
// reports whether it goes; no keeper is no error.
func (s *Store) release(name string) (bool, error) {
	conn, err := s.dialKeeper(name)
	if conn == nil {
		return false, err
	}
	defer conn.Close()
	gone, err := conn.Release()
	if errors.Is(err, sandbox.ErrNoKeeper) {
		return false, nil
	}
	return gone, err
}

// Stop ends everything running in session name: SIGHUP and SIGTERM,
// then SIGKILL after grace. Those whose processes it ends are told the
// session "was stopped from outside" and why (", for a reset", or "").
// It returns once the keeper is gone and the session is free, and
// reports whether anything was running.
func (s *Store) Stop(name string, grace time.Duration, why string) (bool, error) {
	if _, err := s.Get(name); err != nil {
		return false, err
	}
	conn, err := s.dialKeeper(name)
	if conn == nil {
		return false, err
	}
	_, err = conn.Stop(int(grace/time.Millisecond), why)
	conn.Close()
	if err != nil && !errors.Is(err, sandbox.ErrNoKeeper) {
		return true, err
	}
	for deadline := time.Now().Add(grace + joinWait); time.Now().Before(deadline); time.Sleep(10 * time.Millisecond) {
		if lk, err := s.lock(name); err == nil {
			lk.release()
			return true, nil
		}
	}
	return true, fmt.Errorf("session %q: still in use after stop", name)
}

func privilegeWord(userxattr bool) string {
	if userxattr {
		return "by an ordinary user"
	}
	return "by root"
}
