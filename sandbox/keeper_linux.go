package sandbox

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"github.com/incarnate-dev/incarnate/internal/prestage"
)

// Two overlay mounts of one upper dir are undefined behaviour, so a
// session in use is joined, not mounted again. The first entry starts the
// session's keeper: a stage that builds the root once, stays as PID 1,
// and starts every shell or command asked of it over a unix socket,
// through its spawner (spawner_linux.go). When the last of them exits,
// the keeper exits and the kernel takes the namespaces and their mounts
// down with it.

const (
	keeperArg0 = "incarnate:keeper"
	listenFd   = 5 // the socket clients connect to, made by the starter
	lockFd     = 6 // the session's lock, held for the keeper's lifetime
	rangeFd    = 7 // the lock of the session's id range, when it has one
	sockDirFd  = 8 // the directory of the socket, to unlink it at the end
)

// keeperIdle is how long a keeper that never started anything waits for
// its first request: its starter died in between.
const keeperIdle = 10 * time.Second

type keeper struct {
	jobs chan *job
	// releases carry Release requests to the main thread, which alone
	// knows whether a job is on its way; the answer is whether it goes.
	releases chan chan bool
	wakeup   chan struct{} // the loop looks again (after a stop request)
	spawner  *packetConn
	fromSp   chan spawnerReply
	spPid    int
	spGone   bool
	// spRunning: the spawner said it runs (awaitSpawner).
	spRunning bool
	nextID    uint64
	pending   map[uint64]*job // sent to the spawner, not yet started
	children  map[int]*job    // on the main thread only
	live      atomic.Int32    // len(children), for status requests
	spawned   bool
	stopOnce  sync.Once
	stopped   atomic.Bool
	// stoppedWhy: set by stop (string), for Reply.Stopped.
	stoppedWhy atomic.Value
	cgroup     *SessionCgroup // the session's, when it has one
	// devpts is the session's devpts instance, held open from the moment
	// it is mounted: the keeper makes its ptys there, never through a
	// path in the session, which would point it anywhere.
	devpts int
	// replies counts exit statuses not yet sent to their clients: the
	// keeper must not exit under them.
	replies sync.WaitGroup
}

// job is one spawn, handed from a connection to the main thread.
type job struct {
	req    SpawnRequest
	stdio  []int // the client's pipes, without a terminal
	master *os.File
	reply  chan spawnResult
	exit   chan int
	sent   time.Time // when it went to the spawner
}

type spawnResult struct {
	pid       int
	master    *os.File
	startedIn string
	err       *OpError
}

func runKeeper(specR, errW *os.File) int {
	spec, rec := readSpec(specR)
	if rec != nil {
		return fail(errW, rec)
	}
	k := &keeper{jobs: make(chan *job), releases: make(chan chan bool), wakeup: make(chan struct{}, 1), pending: map[uint64]*job{}, children: map[int]*job{}, devpts: -1}
	// A terminal's signals must never end PID 1 (it has no terminal, but
	// nothing is lost by being sure); caught rather than ignored, as an
	// ignored signal would stay so in the spawner it execs.
	signal.Notify(make(chan os.Signal, 1), unix.SIGQUIT, unix.SIGTSTP, unix.SIGTTIN, unix.SIGTTOU)
	st := &state{parentGone: func() bool { return peerClosed(errFd) }, keeper: k, process: spec.Process}
	defer k.closeCgroup()
	if rec := applyAll(spec.Root, st); rec != nil {
		return fail(errW, rec)
	}
	if rec := k.confineSpawner(); rec != nil {
		return fail(errW, rec)
	}
	ready := true
	_ = writeReport(errW, report{Ready: &ready, Notes: st.notes})
	errW.Close()
	ln, err := newPacketConn(listenFd, "listener")
	if err != nil {
		return StatusStage
	}
	go k.accept(ln)
	// The loop on a goroutine of its own, not on this locked thread: one
	// wired to a thread takes each job from the connection that brought
	// it, and each exit from the spawner, only once that thread is woken
	// (a futex and a context switch on every hop). This thread waits, as
	// it alone is in the session's v1 cgroups and leaves them itself
	// (SessionCgroup.BornInside).
	looped := make(chan struct{})
	go func() { k.loop(spec.Linger); close(looped) }()
	<-looped
	// No new clients from here on: one that connected meanwhile sees the
	// connection closed and starts a new keeper once this one is gone.
	// The socket goes too, while the session's lock is still held, so no
	// new keeper's can be in its place yet.
	if strings.Trim(spec.Socket, "./") != "" && !strings.Contains(spec.Socket, "/") {
		_ = unix.Unlinkat(sockDirFd, prestage.TicketPath(spec.Socket), 0)
		_ = unix.Unlinkat(sockDirFd, spec.Socket, 0)
	}
	ln.Close()
	waitTimeout(&k.replies, 2*time.Second)
	k.endAll()
	return 0
}

// endAll kills what the session left running (a background job, the
// FUSE daemon) and waits until it is gone, so that once the session's
// lock is free nothing of it runs: the kernel would end them too when
// PID 1 exits, but only after the lock went with the keeper's fds.
func (k *keeper) endAll() {
	_ = unix.Kill(-1, unix.SIGKILL)
	for deadline := time.Now().Add(2 * time.Second); time.Now().Before(deadline); {
		var ws unix.WaitStatus
		pid, err := unix.Wait4(-1, &ws, unix.WNOHANG, nil)
		switch {
		case err == unix.ECHILD:
			return
		case pid <= 0:
			time.Sleep(time.Millisecond)
		}
	}
}

// startSpawner starts the spawner in the session's user namespace (the
// UserNamespace op among the process ops) and a cgroup namespace of its
// own, and notes the namespace's id map in st for idmapped mounts.
func (k *keeper) startSpawner(st *state) error {
	attr := &syscall.SysProcAttr{Pdeathsig: unix.SIGKILL}
	sp := &state{attr: attr}
	var userns UserNamespace
	for _, op := range st.process {
		if u, ok := op.(UserNamespace); ok {
			userns = u
			if err := u.apply(sp); err != nil {
				return err
			}
		}
	}
	argv := []string{spawnerArg0}
	var maps *idMaps
	if cSpawnerRuns() {
		// Without a new user namespace Go vforks; the C spawner makes
		// the namespace itself and waits for its maps (mapSpawner).
		maps = &idMaps{attr.UidMappings, attr.GidMappings, attr.GidMappingsEnableSetgroups}
		arg := ownUserNSArg
		if attr.Credential != nil {
			arg = ownUserNSRootArg
		}
		argv = append(argv, arg)
		attr.Cloneflags &^= unix.CLONE_NEWUSER
		attr.UidMappings, attr.GidMappings, attr.Credential = nil, nil, nil
	}
	fds, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_SEQPACKET|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return step("socketpair", "", err)
	}
	null, err := unix.Open("/dev/null", unix.O_RDWR|unix.O_CLOEXEC, 0)
	if err != nil {
		return step("open", "/dev/null", err)
	}
	defer unix.Close(null)
	pa := &syscall.ProcAttr{
		Dir: "/", Env: []string{},
		Files: []uintptr{uintptr(null), uintptr(null), uintptr(null), uintptr(fds[1])},
		Sys:   attr,
	}
	// In the session's cgroup from birth; the spawner then makes its own
	// cgroup namespace, rooted there (runSpawner).
	fork := syscall.ForkExec
	if k.cgroup != nil {
		fork = k.cgroup.ForkExec
	}
	pid, err := fork("/proc/self/exe", argv, pa)
	unix.Close(fds[1])
	if err != nil {
		unix.Close(fds[0])
		return step("fork", "/proc/self/exe", err)
	}
	k.spPid = pid
	if k.spawner, err = newPacketConn(fds[0], "spawner"); err != nil {
		return step("spawner socket", "", err)
	}
	if maps != nil {
		if err := k.mapSpawner(maps); err != nil {
			return err
		}
	}
	// Its confinement goes now, so that the spawner applies it while the
	// keeper builds the root; confineSpawner waits for the result.
	msg, err := encodeConfine(confinementOf(st.process))
	if err == nil {
		err = k.spawner.sendBytes(msg)
	}
	if err != nil {
		return step("confine spawner", "", err)
	}
	if userns.Count > 0 {
		nsfd, err := unix.Open("/proc/"+strconv.Itoa(pid)+"/ns/user", unix.O_RDONLY|unix.O_CLOEXEC, 0)
		if err != nil {
			return step("open", "/proc/"+strconv.Itoa(pid)+"/ns/user", err)
		}
		st.idmap = &idmap{nsfd: nsfd, uid: userns.UID, gid: userns.GID}
	}
	return nil
}

// idMaps are a child's id maps, as SysProcAttr has them.
type idMaps struct {
	Uid, Gid  []syscall.SysProcIDMap
	Setgroups bool
}

// mapSpawner writes the id maps of the user namespace the spawner made
// itself, once it says it has, as Go's fork would have; the confinement
// it waits for next tells it they are there.
func (k *keeper) mapSpawner(m *idMaps) error {
	if err := k.awaitSpawner(); err != nil {
		return err
	}
	proc := "/proc/" + strconv.Itoa(k.spPid) + "/"
	if !m.Setgroups {
		if err := writeProcFile(proc+"setgroups", "deny"); err != nil {
			return step("setgroups", proc+"setgroups", err)
		}
	}
	for _, f := range []struct {
		name string
		ids  []syscall.SysProcIDMap
	}{{"uid_map", m.Uid}, {"gid_map", m.Gid}} {
		var b strings.Builder
		for _, r := range f.ids {
			fmt.Fprintf(&b, "%d %d %d\n", r.ContainerID, r.HostID, r.Size)
		}
		if err := writeProcFile(proc+f.name, b.String()); err != nil {
			return step(f.name, proc+f.name, err)
		}
	}
	return nil
}

func writeProcFile(path, s string) error {
	fd, err := unix.Open(path, unix.O_WRONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		return err
	}
	defer unix.Close(fd)
	_, err = unix.Write(fd, []byte(s))
	return err
}

// awaitSpawner waits until the spawner runs. Its exec is done once fork
// returns, but a dynamically linked binary (a test's) still loads its
// libraries from the old root afterwards, which the pivot takes away.
func (k *keeper) awaitSpawner() error {
	if k.spRunning {
		return nil
	}
	k.spRunning = true
	var rep spawnerReply
	fds, err := k.spawner.recv(&rep)
	closeAll(fds)
	if err != nil {
		return step("start spawner", "", errors.New("the spawner died at its start: "+k.spawnerStatus(err)))
	}
	if rep.Error != nil {
		return rep.Error
	}
	return nil
}

// confinementOf is what the spawner imposes on itself, and so on every
// process it starts: the process ops but the user namespace, which it is
// started in.
func confinementOf(process []Op) []Op {
	var confine []Op
	for _, op := range process {
		if _, ok := op.(UserNamespace); !ok {
			confine = append(confine, op)
		}
	}
	return confine
}

// confineSpawner waits until the confinement startSpawner sent holds.
func (k *keeper) confineSpawner() *OpError {
	if err := k.awaitSpawner(); err != nil {
		return toOpError(StartSpawner{}, err)
	}
	var rep spawnerReply
	fds, err := k.spawner.recv(&rep)
	closeAll(fds)
	switch {
	case err != nil:
		return &OpError{Op: "spawner", Step: "start", Msg: "the spawner died before it was confined: " + k.spawnerStatus(err), Status: StatusStage}
	case rep.Error != nil:
		return rep.Error
	case !rep.Ready:
		return &OpError{Op: "spawner", Step: "start", Msg: "the spawner did not confirm its confinement", Status: StatusStage}
	}
	k.fromSp = make(chan spawnerReply, 16)
	go func() {
		defer close(k.fromSp)
		for {
			var rep spawnerReply
			fds, err := k.spawner.recv(&rep)
			closeAll(fds) // the spawner has no business sending any
			if err != nil {
				return
			}
			k.fromSp <- rep
		}
	}()
	return nil
}

// closeCgroup ends what is left in the session's cgroup, and the cgroup.
func (k *keeper) closeCgroup() {
	if k.cgroup != nil {
		_ = k.cgroup.Close()
	}
}

// spawnerStatus says how the spawner ended, for a failure to reach it.
func (k *keeper) spawnerStatus(err error) string {
	var ws unix.WaitStatus
	for i := 0; i < 100; i++ {
		if pid, _ := unix.Wait4(k.spPid, &ws, unix.WNOHANG, nil); pid == k.spPid {
			return fmt.Sprintf("%v (its status: %d)", err, ExitCode(ws))
		}
		time.Sleep(time.Millisecond)
	}
	return err.Error()
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
func (k *keeper) loop(linger time.Duration) {
	sigchld := make(chan os.Signal, 1)
	signal.Notify(sigchld, unix.SIGCHLD)
	term := make(chan os.Signal, 1)
	signal.Notify(term, unix.SIGTERM, unix.SIGINT, unix.SIGHUP)
	idle := time.After(keeperIdle)
	idleOver := false
	late := time.NewTicker(spawnReplyWait / 4)
	defer late.Stop()
	// lingered fires once nothing has run for linger; nil while
	// something runs.
	var lingered <-chan time.Time
	for {
		select {
		case j := <-k.jobs:
			k.dispatch(j)
		case <-late.C:
			k.failLate()
		case rep, ok := <-k.fromSp:
			if !ok {
				k.spawnerGone()
			} else {
				k.handle(rep)
			}
		case <-sigchld:
			k.reap()
		case <-term:
			k.stop(5*time.Second, ", by a signal to its keeper")
		case <-idle:
			idleOver = true
		case <-lingered:
			return
		case <-k.wakeup:
		case answer := <-k.releases:
			free := k.free()
			answer <- free
			if free {
				return
			}
		}
		done := k.free() && (k.spawned || idleOver || k.spGone)
		switch {
		case done && (linger <= 0 || k.spGone || k.stopping()):
			return
		case done && lingered == nil:
			lingered = time.After(linger)
		case !done:
			lingered = nil
		}
	}
}

// free: nothing runs and nothing is being started.
func (k *keeper) free() bool { return len(k.children) == 0 && len(k.pending) == 0 }

// stopping: a stop was asked for, so nothing is kept for later.
func (k *keeper) stopping() bool { return k.stopped.Load() }

// dispatch hands a client's request to the spawner, with a fresh pty from
// the session's own devpts when a terminal was asked for (sized before
// the child starts, so its first read of the size is right).
func (k *keeper) dispatch(j *job) {
	defer closeAll(j.stdio)
	// Any request, even a failed one, counts: a keeper whose only spawn
	// failed has nothing left to keep and must not hold the session.
	k.spawned = true
	if k.spGone {
		j.reply <- spawnResult{err: &OpError{Op: "spawn", Msg: "the session is ending", Status: StatusStage}}
		return
	}
	if err := j.req.validate(); err != nil {
		j.reply <- spawnResult{err: &OpError{Op: "spawn", Msg: err.Error(), Status: StatusStage}}
		return
	}
	fds, rec := k.streams(j)
	if rec != nil {
		j.reply <- spawnResult{err: rec}
		return
	}
	k.nextID++
	msg, err := encodeJob(k.nextID, j.req)
	if err == nil {
		err = k.spawner.sendBytes(msg, fds...)
	}
	if j.req.Tty {
		unix.Close(fds[0]) // the slave: the spawner has its own copy now
	}
	if err != nil {
		if j.master != nil {
			j.master.Close()
		}
		j.reply <- spawnResult{err: &OpError{Op: "spawn", Step: "send", Msg: err.Error(), Status: StatusStage}}
		return
	}
	j.sent = time.Now()
	k.pending[k.nextID] = j
}

// spawnReplyWait bounds how long a request waits for the spawner to say
// it started the process. A session can stop its spawner (SIGSTOP: it is
// the session's root's own process), and new requests must not hang.
const spawnReplyWait = 10 * time.Second

// failLate answers the requests the spawner has not answered in time.
func (k *keeper) failLate() {
	for id, j := range k.pending {
		if time.Since(j.sent) < spawnReplyWait {
			continue
		}
		delete(k.pending, id)
		if j.master != nil {
			j.master.Close()
		}
		j.reply <- spawnResult{err: &OpError{Op: "spawn", Msg: fmt.Sprintf(
			"the session's spawner did not answer in %v: something inside may have stopped it; `incarnate stop` ends the session", spawnReplyWait), Status: StatusStage}}
	}
}

// handle takes one report of the spawner's.
func (k *keeper) handle(rep spawnerReply) {
	if e := rep.Exited; e != nil {
		if j, ok := k.children[e.Pid]; ok {
			delete(k.children, e.Pid)
			k.live.Store(int32(len(k.children)))
			j.exit <- e.Code
		}
		return
	}
	j, ok := k.pending[rep.ID]
	if !ok {
		return
	}
	delete(k.pending, rep.ID)
	if rep.Error != nil || rep.Pid <= 1 {
		if j.master != nil {
			j.master.Close()
		}
		if rep.Error == nil {
			rep.Error = &OpError{Op: "spawn", Msg: "the spawner gave no pid", Status: StatusStage}
		}
		j.reply <- spawnResult{err: rep.Error}
		return
	}
	k.replies.Add(1)
	k.children[rep.Pid] = j
	k.live.Store(int32(len(k.children)))
	j.reply <- spawnResult{pid: rep.Pid, master: j.master, startedIn: rep.StartedIn}
}

// spawnerGone ends the session: without its spawner nothing more can
// start, and nobody would report what still runs.
func (k *keeper) spawnerGone() {
	k.spGone = true
	k.fromSp = nil
	_ = unix.Kill(-1, unix.SIGKILL)
	for id, j := range k.pending {
		delete(k.pending, id)
		if j.master != nil {
			j.master.Close()
		}
		j.reply <- spawnResult{err: &OpError{Op: "spawn", Msg: "the session's spawner died", Status: StatusStage}}
	}
	for pid, j := range k.children {
		delete(k.children, pid)
		j.exit <- 128 + int(unix.SIGKILL)
	}
	k.live.Store(0)
}

// streams returns the fds 0-2 the spawner gives the child: a pty's slave
// three times, or the client's three pipes.
func (k *keeper) streams(j *job) ([]int, *OpError) {
	if !j.req.Tty {
		if len(j.stdio) != 3 {
			return nil, &OpError{Op: "spawn", Msg: "standard streams missing from the request", Status: StatusStage}
		}
		for _, fd := range j.stdio {
			var st unix.Stat_t
			if err := unix.Fstat(fd, &st); err != nil || st.Mode&unix.S_IFMT != unix.S_IFIFO {
				return nil, &OpError{Op: "spawn", Msg: "a stream that is not a pipe was handed in", Status: StatusStage}
			}
		}
		return j.stdio, nil
	}
	master, slave, err := k.openPty(j.req.Rows, j.req.Cols)
	if err != nil {
		return nil, toOpError(NewSession{}, err)
	}
	j.master = master
	return []int{slave, slave, slave}, nil
}

// holdDevpts opens the devpts instance just mounted at target.
func (k *keeper) holdDevpts(st *state, target string) error {
	p, done, err := st.existing(target)
	if err != nil {
		return err
	}
	if done == nil {
		return step("open", target, unix.ENOENT)
	}
	defer done()
	fd, err := unix.Open(p, unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return step("open", target, err)
	}
	var sfs unix.Statfs_t
	if err := unix.Fstatfs(fd, &sfs); err != nil || sfs.Type != unix.DEVPTS_SUPER_MAGIC {
		unix.Close(fd)
		return step("open", target, errors.New("not the devpts just mounted"))
	}
	k.devpts = fd
	return nil
}

// openPty makes a pty in the session's devpts: the master from its ptmx,
// the slave from the master (TIOCGPTPEER), neither by a path inside the
// session and neither as the keeper's terminal.
func (k *keeper) openPty(rows, cols uint16) (*os.File, int, error) {
	if k.devpts < 0 {
		return nil, -1, step("open pty", "/dev/pts", errors.New("the session has no devpts of its own"))
	}
	m, err := unix.Openat(k.devpts, "ptmx", unix.O_RDWR|unix.O_NOCTTY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, -1, step("open pty", "/dev/pts/ptmx", err)
	}
	if err := unix.IoctlSetPointerInt(m, unix.TIOCSPTLCK, 0); err != nil {
		unix.Close(m)
		return nil, -1, step("unlock pty", "/dev/pts/ptmx", err)
	}
	if rows > 0 && cols > 0 {
		_ = unix.IoctlSetWinsize(m, unix.TIOCSWINSZ, &unix.Winsize{Row: rows, Col: cols})
	}
	s, _, errno := unix.Syscall(unix.SYS_IOCTL, uintptr(m), unix.TIOCGPTPEER, unix.O_RDWR|unix.O_NOCTTY|unix.O_CLOEXEC)
	if errno != 0 {
		unix.Close(m)
		return nil, -1, step("open pty peer", "/dev/pts/ptmx", errno)
	}
	return os.NewFile(uintptr(m), "ptmx"), int(s), nil
}

// reap collects every exited process: the spawner, and the orphans PID 1
// inherits, which are simply let go.
func (k *keeper) reap() {
	// A spawner stopped from inside (it is the session root's own
	// process) would hold every client waiting for an exit it cannot
	// report: the session has broken itself, and ends.
	var ws unix.WaitStatus
	if pid, _ := unix.Wait4(k.spPid, &ws, unix.WNOHANG|unix.WUNTRACED, nil); pid == k.spPid && ws.Stopped() {
		_ = unix.Kill(k.spPid, unix.SIGKILL)
	}
	reapExited(func(pid int, _ unix.WaitStatus) {
		if pid == k.spPid {
			k.spawner.Close()
		}
	})
}

// stop ends everything in the namespace: kill(-1) from PID 1 reaches every
// other process in it. SIGHUP comes first, as from a closed terminal: a
// shell saves its history and goes (an interactive one ignores SIGTERM),
// so a session of shells ends at once. SIGTERM follows for the rest, and
// SIGKILL once grace has passed. The spawner ignores them all, to report
// the exits. why is what the clients are told (StopRequest.Why).
func (k *keeper) stop(grace time.Duration, why string) {
	k.stopped.Store(true)
	k.stopOnce.Do(func() {
		k.stoppedWhy.Store("was stopped from outside" + why)
		_ = unix.Kill(-1, unix.SIGHUP)
		time.AfterFunc(min(hupFirst, grace), func() { _ = unix.Kill(-1, unix.SIGTERM) })
		time.AfterFunc(grace, func() { _ = unix.Kill(-1, unix.SIGKILL) })
	})
}

// hupFirst is how long SIGHUP has before SIGTERM follows: long enough
// for a trap that saves something.
const hupFirst = 200 * time.Millisecond

// stoppedNote is what a client whose process ended is told: nothing,
// unless the session was stopped from outside.
func (k *keeper) stoppedNote() string {
	s, _ := k.stoppedWhy.Load().(string)
	return s
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

// serve answers one connection. Only the keeper's own user, from outside
// the session, may talk to it: the socket's directory is private, and the
// peer's credentials are checked besides. A process inside the session
// shows a pid in the keeper's own PID namespace; one outside shows 0.
func (k *keeper) serve(conn *packetConn) {
	defer conn.Close()
	if cred, err := conn.peerCred(); err != nil || int(cred.Uid) != os.Geteuid() || cred.Pid != 0 {
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
		k.stop(time.Duration(req.Stop.GraceMillis)*time.Millisecond, req.Stop.Why)
		select {
		case k.wakeup <- struct{}{}: // a lingering keeper goes now
		default:
		}
		_ = conn.send(Reply{Children: int(k.live.Load())})
	case req.Release:
		closeAll(fds)
		answer := make(chan bool, 1)
		k.releases <- answer
		_ = conn.send(Reply{Released: <-answer})
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
	err := conn.send(Reply{Started: true, StartedIn: res.startedIn}, sendFds...)
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
		_ = conn.send(Reply{Exit: &code, Stopped: k.stoppedNote()})
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
