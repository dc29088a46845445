package sandbox

import (
	"os"
	"os/signal"
	"syscall"
	"unsafe"

	"golang.org/x/sys/unix"
)

// The spawner is the keeper's hand inside the session. A keeper that runs
// as the machine's root must not fork session processes itself: between
// its fork and the target's exec nothing can run in Go, so the security
// setup a process needs after entering its user namespace (seccomp,
// Landlock, bounding set, keyring) would have to be on the keeper's own
// thread first, where the seccomp filter would forbid the very clone
// that makes the user namespace. So the keeper starts one process in the
// session's user namespace and cgroup, the spawner. It makes a cgroup
// namespace rooted there, applies the keeper's confinement ops to itself
// once, and forks every session process from its locked thread: they inherit all of it, and no process of the session is ever
// more privileged than the spawner. The spawner holds nothing a session
// process lacks (it is root of the same namespace, under the same filter),
// so the keeper treats what it says as untrusted.

const (
	spawnerArg0 = "incarnate:spawner"
	spawnerFd   = 3 // the spawner's end of its socket pair with the keeper
	// ownUserNSArg asks the C spawner to make the session's user
	// namespace itself (keeper.startSpawner); a Go one, many threads from
	// its start, cannot. ownUserNSRootArg: and to take id 0 there, with
	// no supplementary group, once mapped (a root session's id range).
	ownUserNSArg     = "own-userns"
	ownUserNSRootArg = "own-userns-root"
	// cSpawnerStack is the least stack limit the C spawner runs under
	// (SP_STACK in spawner.c); below it, it leaves the work to Go's.
	cSpawnerStack = 4 << 20
)

// stagedBuild is "yes" in a build entered through the pre-runtime stage
// (make build sets it), whose spawner is the C one.
var stagedBuild string

// cSpawnerRuns reports whether a spawner started now is the C one.
func cSpawnerRuns() bool {
	var lim unix.Rlimit
	return stagedBuild == "yes" && unix.Getrlimit(unix.RLIMIT_STACK, &lim) == nil && lim.Cur >= cSpawnerStack
}

// What the keeper sends its spawner, first the confinement to apply, then
// jobs, each with its three stream fds attached, is in spawnwire_linux.go.

// spawnerReply is what the spawner sends back: that the confinement
// holds (or which op failed), a job's pid or failure, or an exit.
type spawnerReply struct {
	Ready bool   `json:"ready,omitempty"`
	ID    uint64 `json:"id,omitempty"`
	Pid   int    `json:"pid,omitempty"`
	// StartedIn: the job started there, as its request's Dir is not in
	// the session.
	StartedIn string   `json:"started_in,omitempty"`
	Error     *OpError `json:"error,omitempty"`
	Exited    *exited  `json:"exited,omitempty"`
}

type exited struct {
	Pid  int `json:"pid"`
	Code int `json:"code"`
}

func runSpawner() int {
	conn, err := newPacketConn(spawnerFd, "keeper")
	if err != nil {
		return StatusStage
	}
	unignoreSignals()
	if len(os.Args) > 1 {
		_ = conn.send(spawnerReply{Error: &OpError{Op: "spawner", Step: "start", Msg: "the Go spawner cannot make a user namespace (asked " + os.Args[1] + ")", Status: StatusStage}})
		return StatusStage
	}
	// Born in the session's cgroup, in the keeper's cgroup namespace (see
	// SessionCgroup.BornInside): the session's own is rooted where the
	// spawner is now. On this, the locked thread every job is forked
	// from: a namespace of the calling thread's.
	if err := unix.Unshare(unix.CLONE_NEWCGROUP); err != nil {
		errno, _ := err.(unix.Errno)
		_ = conn.send(spawnerReply{Error: &OpError{Op: "spawner", Step: "unshare", Msg: "cgroup namespace", Errno: errno, Status: StatusStage}})
		return StatusStage
	}
	// Installing signal handlers takes a millisecond: beside the wait.
	sigchld := make(chan os.Signal, 1)
	notified := make(chan struct{})
	go func() {
		signal.Notify(sigchld, unix.SIGCHLD)
		// The keeper's stop signals reach the spawner too (kill(-1) from
		// PID 1); it stays to report the exits, and goes with its last
		// child. Caught, not ignored: an ignored signal would stay
		// ignored in every process it starts.
		signal.Notify(make(chan os.Signal, 1), unix.SIGTERM, unix.SIGHUP, unix.SIGINT)
		close(notified)
	}()
	// Running, with everything it needs loaded: the keeper may pivot now.
	if err := conn.send(spawnerReply{}); err != nil {
		return StatusStage
	}
	msg, fds, err := conn.recvBytes()
	closeAll(fds)
	if err != nil {
		return StatusStage
	}
	<-notified
	ops, err := decodeConfine(msg)
	if err != nil {
		_ = conn.send(spawnerReply{Error: &OpError{Op: "spawner", Msg: err.Error(), Status: StatusStage}})
		return StatusStage
	}
	// The keeper builds the root meanwhile.
	if rec := applyAll(ops, &state{}); rec != nil {
		_ = conn.send(spawnerReply{Error: rec})
		return rec.Status
	}
	again := everyForkOps(ops)
	if err := conn.send(spawnerReply{Ready: true}); err != nil {
		return StatusStage
	}
	jobs := make(chan spawnerJobFds)
	go readJobs(conn, jobs)
	for pivoted := false; ; {
		select {
		case j, ok := <-jobs:
			if !ok {
				// The keeper is gone: so is the session.
				return 0
			}
			// Started before the pivot, the spawner's directory was the
			// old root; the pivot moved it (jobs come after it), and this
			// makes sure nothing of the host stays.
			if !pivoted {
				if err := unix.Chdir("/"); err != nil {
					return StatusChdirRoot
				}
				pivoted = true
			}
			_ = conn.send(startJob(j, again))
			closeAll(j.fds)
		case <-sigchld:
			for _, e := range reapChildren() {
				_ = conn.send(spawnerReply{Exited: &e})
			}
		}
	}
}

type spawnerJobFds struct {
	id  uint64
	req SpawnRequest
	fds []int
}

func readJobs(conn *packetConn, jobs chan<- spawnerJobFds) {
	defer close(jobs)
	for {
		msg, fds, err := conn.recvBytes()
		if err != nil {
			return
		}
		id, req, err := decodeJob(msg)
		if err != nil || len(fds) != 3 {
			closeAll(fds)
			continue
		}
		jobs <- spawnerJobFds{id, req, fds}
	}
}

// startJob forks one session process from the spawner's locked thread,
// with the request's directory, mask and session, and the three fds.
func startJob(j spawnerJobFds, again []Op) spawnerReply {
	reply := spawnerReply{ID: j.id}
	req := j.req
	if err := req.validate(); err != nil {
		reply.Error = &OpError{Op: "spawn", Msg: err.Error(), Status: StatusStage}
		return reply
	}
	st := &state{attr: &syscall.SysProcAttr{}}
	if rec := applyAll(req.jobOps(), st); rec != nil {
		reply.Error = rec
		return reply
	}
	// Chdir moved the whole spawner; it goes back once the child has its
	// own copy of the directory.
	defer unix.Chdir("/")
	if req.DirElse != "" {
		var st unix.Stat_t
		if unix.Stat(req.Dir, &st) == unix.ENOENT {
			reply.StartedIn, _ = unix.Getwd()
		}
	}
	if rec := applyAll(again, st); rec != nil {
		reply.Error = rec
		return reply
	}
	argv, path, rec := findCommand(req)
	if rec != nil {
		reply.Error = rec
		return reply
	}
	files := []uintptr{uintptr(j.fds[0]), uintptr(j.fds[1]), uintptr(j.fds[2])}
	pid, err := syscall.ForkExec(path, argv, &syscall.ProcAttr{Env: req.Env, Files: files, Sys: st.attr})
	if err != nil {
		reply.Error = execError(path, err)
		return reply
	}
	reply.Pid = pid
	return reply
}

// reapChildren collects every child that has exited.
func reapChildren() []exited {
	var out []exited
	reapExited(func(pid int, ws unix.WaitStatus) { out = append(out, exited{Pid: pid, Code: ExitCode(ws)}) })
	return out
}

// reapExited collects, without waiting, every child that has exited.
func reapExited(fn func(pid int, ws unix.WaitStatus)) {
	for {
		var ws unix.WaitStatus
		pid, err := unix.Wait4(-1, &ws, unix.WNOHANG, nil)
		if err == unix.EINTR {
			continue
		}
		if err != nil || pid <= 0 {
			return
		}
		fn(pid, ws)
	}
}

// findCommand resolves the command, or the first fallback that exists.
func findCommand(req SpawnRequest) ([]string, string, *OpError) {
	var first *OpError
	for _, argv := range append([][]string{req.Argv}, req.Fallback...) {
		path, rec := lookPath(argv[0], req.Env)
		if rec == nil {
			return argv, path, nil
		}
		if first == nil {
			first = rec
		}
	}
	return nil, "", first
}

// everyFork is implemented by the confinement ops that must be applied
// again before each fork, not only once (a fresh keyring per process).
type everyFork interface{ everyFork() }

func everyForkOps(ops []Op) []Op {
	var out []Op
	for _, op := range ops {
		if _, ok := op.(everyFork); ok {
			out = append(out, op)
		}
	}
	return out
}

// unignoreSignals gives back their default action to the signals the
// spawner was started with ignored (a `nohup` or a make the keeper's
// first caller ran under): an ignored signal stays so across fork and
// exec, in every job. Go leaves those alone and handles none of them,
// so the raw call changes nothing of the runtime's. The C spawner resets
// every disposition at its start.
func unignoreSignals() {
	type sigaction struct{ handler, flags, restorer, mask uint64 }
	const sigIgn = 1
	for sig := 1; sig <= 64; sig++ {
		if sig == int(unix.SIGKILL) || sig == int(unix.SIGSTOP) {
			continue
		}
		var old sigaction
		_, _, e := unix.RawSyscall6(unix.SYS_RT_SIGACTION, uintptr(sig), 0, uintptr(unsafe.Pointer(&old)), 8, 0, 0)
		if e == 0 && old.handler == sigIgn {
			dfl := sigaction{}
			_, _, _ = unix.RawSyscall6(unix.SYS_RT_SIGACTION, uintptr(sig), uintptr(unsafe.Pointer(&dfl)), 0, 8, 0, 0)
		}
	}
}
