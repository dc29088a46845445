package sandbox

import (
	"encoding/json"
	"os"
	"os/signal"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/creack/pty"
	"golang.org/x/sys/unix"
)

// Two overlay mounts of one upper dir are undefined behaviour, so a
// session in use is joined, not mounted again. The first entry starts the
// session's keeper: a stage that builds the root once, stays as PID 1,
// and starts every shell or command asked of it over a unix socket. When
// the last of them exits, the keeper exits and the kernel takes the
// namespaces and their mounts down with it.

const (
	keeperArg0 = "incarnate:keeper"
	listenFd   = 5 // the socket clients connect to, made by the starter
	lockFd     = 6 // the session's lock, held for the keeper's lifetime
)

// keeperIdle is how long a keeper that never started anything waits for
// its first request: its starter died in between.
const keeperIdle = 10 * time.Second

type keeper struct {
	jobs     chan *job
	children map[int]*job // on the main thread only
	live     atomic.Int32 // len(children), for status requests
	spawned  bool
	stopOnce sync.Once
	// replies counts exit statuses not yet sent to their clients: the
	// keeper must not exit under them.
	replies sync.WaitGroup
}

// job is one spawn, handed from a connection to the main thread, which
// alone forks (the thread whose no_new_privs the children inherit).
type job struct {
	req   SpawnRequest
	stdio []int // the client's streams, without a terminal
	reply chan spawnResult
	exit  chan int
}

type spawnResult struct {
	pid    int
	master *os.File
	err    *OpError
}

func runKeeper(specR, errW *os.File) int {
	if _, _, rec := buildRoot(specR); rec != nil {
		return fail(errW, rec)
	}
	ready := true
	_ = writeReport(errW, report{Ready: &ready})
	errW.Close()
	k := &keeper{jobs: make(chan *job), children: map[int]*job{}}
	ln, err := newPacketConn(listenFd, "listener")
	if err != nil {
		return StatusStage
	}
	go k.accept(ln)
	k.loop()
	// No new clients from here on: one that connected meanwhile sees the
	// connection closed and starts a new keeper once this one is gone.
	ln.Close()
	waitTimeout(&k.replies, 2*time.Second)
	return 0
}

func waitTimeout(wg *sync.WaitGroup, d time.Duration) {
	done := make(chan struct{})
	go func() { wg.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(d):
	}
}

// loop runs on the stage's locked thread until the last child is gone.
func (k *keeper) loop() {
	sigchld := make(chan os.Signal, 1)
	signal.Notify(sigchld, unix.SIGCHLD)
	term := make(chan os.Signal, 1)
	signal.Notify(term, unix.SIGTERM, unix.SIGINT, unix.SIGHUP)
	idle := time.After(keeperIdle)
	idleOver := false
	for {
		select {
		case j := <-k.jobs:
			k.spawn(j)
		case <-sigchld:
			k.reap()
		case <-term:
			k.stop(5 * time.Second)
		case <-idle:
			idleOver = true
		}
		if len(k.children) == 0 && (k.spawned || idleOver) {
			return
		}
	}
}

func (k *keeper) spawn(j *job) {
	defer closeAll(j.stdio)
	// Any request, even a failed one, counts: a keeper whose only spawn
	// failed has nothing left to keep and must not hold the session.
	k.spawned = true
	res := k.start(j)
	if res.err == nil {
		k.replies.Add(1)
		k.children[res.pid] = j
		k.live.Store(int32(len(k.children)))
	}
	j.reply <- res
}

func (k *keeper) start(j *job) spawnResult {
	st := &state{attr: &syscall.SysProcAttr{}}
	if rec := applyAll(j.req.Spec.Process, st); rec != nil {
		return spawnResult{err: rec}
	}
	// Chdir moved the whole keeper; it goes back once the child has its
	// own copy of the directory.
	defer unix.Chdir("/")
	argv, path, rec := findCommand(j.req)
	if rec != nil {
		return spawnResult{err: rec}
	}
	files, master, rec := k.streams(j)
	if rec != nil {
		return spawnResult{err: rec}
	}
	fds := make([]uintptr, len(files))
	for i, f := range files {
		fds[i] = uintptr(f)
	}
	pid, err := syscall.ForkExec(path, argv, &syscall.ProcAttr{Env: j.req.Spec.Env, Files: fds, Sys: st.attr})
	if j.req.Tty {
		unix.Close(files[0]) // the slave: the child has it now
	}
	if err != nil {
		if master != nil {
			master.Close()
		}
		return spawnResult{err: execError(path, err)}
	}
	return spawnResult{pid: pid, master: master}
}

// streams returns the child's fds 0-2: a fresh pty from the session's own
// devpts when a terminal was asked for (sized before the child starts, so
// its first read of the size is right), else the client's own streams.
func (k *keeper) streams(j *job) ([]int, *os.File, *OpError) {
	if !j.req.Tty {
		if len(j.stdio) != 3 {
			return nil, nil, &OpError{Op: "spawn", Msg: "standard streams missing from the request", Status: StatusStage}
		}
		return j.stdio, nil, nil
	}
	master, slave, err := pty.Open()
	if err != nil {
		return nil, nil, toOpError(NewSession{}, step("open pty", "/dev/ptmx", err))
	}
	if j.req.Rows > 0 && j.req.Cols > 0 {
		_ = pty.Setsize(master, &pty.Winsize{Rows: j.req.Rows, Cols: j.req.Cols})
	}
	fd, err := unix.Dup(int(slave.Fd()))
	slave.Close()
	if err != nil {
		master.Close()
		return nil, nil, toOpError(NewSession{}, step("dup", "pty", err))
	}
	return []int{fd, fd, fd}, master, nil
}

// findCommand resolves the command, or the first fallback that exists.
func findCommand(req SpawnRequest) ([]string, string, *OpError) {
	var first *OpError
	for _, argv := range append([][]string{req.Spec.Argv}, req.Fallback...) {
		path, rec := lookPath(argv[0], req.Spec.Env)
		if rec == nil {
			return argv, path, nil
		}
		if first == nil {
			first = rec
		}
	}
	return nil, "", first
}

// reap collects every exited process; PID 1 inherits the namespace's
// orphans too, which are simply let go.
func (k *keeper) reap() {
	for {
		var ws unix.WaitStatus
		pid, err := unix.Wait4(-1, &ws, unix.WNOHANG, nil)
		if err == unix.EINTR {
			continue
		}
		if err != nil || pid <= 0 {
			return
		}
		if j, ok := k.children[pid]; ok {
			delete(k.children, pid)
			k.live.Store(int32(len(k.children)))
			j.exit <- ExitCode(ws)
		}
	}
}

// stop ends everything in the namespace: kill(-1) from PID 1 reaches every
// other process in it.
func (k *keeper) stop(grace time.Duration) {
	k.stopOnce.Do(func() {
		_ = unix.Kill(-1, unix.SIGTERM)
		time.AfterFunc(grace, func() { _ = unix.Kill(-1, unix.SIGKILL) })
	})
}

func (k *keeper) accept(ln *packetConn) {
	for {
		var conn int
		var aerr error
		err := ln.rc.Read(func(fd uintptr) bool {
			conn, _, aerr = unix.Accept4(int(fd), unix.SOCK_CLOEXEC)
			return aerr != unix.EAGAIN
		})
		if err != nil {
			return
		}
		if aerr == unix.EINTR || aerr == unix.ECONNABORTED {
			continue
		}
		if aerr != nil {
			return
		}
		pc, err := newPacketConn(conn, "client")
		if err == nil {
			go k.serve(pc)
		}
	}
}

// serve answers one connection. Only the keeper's own user may talk to
// it: the socket's directory is private, and the peer's credentials are
// checked besides.
func (k *keeper) serve(conn *packetConn) {
	defer conn.Close()
	if uid, err := conn.peerUID(); err != nil || uid != os.Geteuid() {
		return
	}
	var req Request
	fds, err := conn.recv(&req)
	if err != nil {
		return
	}
	switch {
	case req.Status:
		closeAll(fds)
		_ = conn.send(Reply{Children: int(k.live.Load())})
	case req.Stop != nil:
		closeAll(fds)
		k.stop(time.Duration(req.Stop.GraceMillis) * time.Millisecond)
		_ = conn.send(Reply{Children: int(k.live.Load())})
	case req.Spawn != nil:
		k.serveSpawn(conn, req.Spawn, fds)
	default:
		closeAll(fds)
	}
}

func (k *keeper) serveSpawn(conn *packetConn, req *SpawnRequest, fds []int) {
	j := &job{req: *req, stdio: fds, reply: make(chan spawnResult, 1), exit: make(chan int, 1)}
	k.jobs <- j
	res := <-j.reply
	if res.err != nil {
		_ = conn.send(Reply{Error: res.err})
		return
	}
	var sendFds []int
	if res.master != nil {
		sendFds = []int{int(res.master.Fd())}
	}
	err := conn.send(Reply{Started: true}, sendFds...)
	if res.master != nil {
		res.master.Close() // the client holds the only copy now
	}
	defer k.replies.Done()
	gone := make(chan struct{})
	go k.relaySignals(conn, res.pid, gone)
	if err != nil {
		hangUp(res.pid, req.Tty)
	}
	select {
	case code := <-j.exit:
		_ = conn.send(Reply{Exit: &code})
	case <-gone:
		// The client died or left: hang its process up, as closing a
		// terminal would, and let the reaper collect it.
		hangUp(res.pid, req.Tty)
	}
}

// relaySignals passes the client's signals on until the client goes.
func (k *keeper) relaySignals(conn *packetConn, pid int, gone chan struct{}) {
	defer close(gone)
	for {
		var req Request
		fds, err := conn.recv(&req)
		closeAll(fds)
		if err != nil {
			return
		}
		if req.Signal > 0 && req.Signal < 65 {
			_ = unix.Kill(-pid, syscall.Signal(req.Signal))
		}
	}
}

// hangUp ends a process whose client is gone: a terminal session gets
// SIGHUP (its master is closed too, so it would anyway), a piped command
// SIGKILL, as if its parent had died.
func hangUp(pid int, tty bool) {
	sig := unix.SIGKILL
	if tty {
		sig = unix.SIGHUP
	}
	_ = unix.Kill(-pid, sig)
	_ = unix.Kill(pid, sig)
}

// readSpec reads the stage's spec from the starter.
func readSpec(specR *os.File) (Spec, *OpError) {
	var spec Spec
	err := json.NewDecoder(specR).Decode(&spec)
	specR.Close()
	if err != nil {
		return spec, &OpError{Op: "stage", Step: "read spec", Msg: err.Error(), Status: StatusStage}
	}
	return spec, nil
}
