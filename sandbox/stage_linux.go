package sandbox

import (
	"errors"
	"os"
	"os/signal"
	"path/filepath"
	"runtime"
	"strings"
	"syscall"

	"golang.org/x/sys/unix"
)

// A Go process is multi-threaded from its first instruction, so nothing
// can run between fork and exec the way a C sandbox does it. The parent
// therefore re-executes its own binary with the clone flags set; that
// process, the stage, starts inside the new namespaces, reads its Spec
// from fd 3, applies it on one locked thread, and forks the target from
// that thread. The stage stays behind as the sandbox's PID 1: it forwards
// signals, reaps orphans and exits with the target's status, which takes
// everything else in the namespaces down with it.

const (
	stageArg0 = "incarnate:stage"
	specFd    = 3 // the parent writes the Spec here, then closes it
	errFd     = 4 // the stage writes its one report here
)

// IsStage reports whether this process was started as a sandbox stage.
// main calls it before anything else.
func IsStage() bool {
	return len(os.Args) > 0 && (os.Args[0] == stageArg0 || os.Args[0] == keeperArg0 || os.Args[0] == spawnerArg0)
}

// RunStage runs the stage. It never returns.
func RunStage() {
	runtime.LockOSThread()
	// Re-executed through /proc/self/exe the stage would be called "exe"
	// in ps; name it for what it is. Through /proc/self/comm, which names
	// the process, where prctl would name only the current thread.
	_ = os.WriteFile("/proc/self/comm", []byte("incarnate"), 0)
	if os.Args[0] == spawnerArg0 {
		os.Exit(runSpawner())
	}
	specR, errW := os.NewFile(specFd, "spec"), os.NewFile(errFd, "report")
	// The target must not inherit the report pipe, or a daemon it leaves
	// behind would keep the parent waiting for EOF.
	unix.CloseOnExec(errFd)
	if os.Args[0] == keeperArg0 {
		// Held, never passed on: the spawner and what it starts must not
		// get the listening socket or the locks.
		for _, fd := range []int{listenFd, lockFd, rangeFd, sockDirFd} {
			unix.CloseOnExec(fd)
		}
		// Nor anything else its starter had open: a shell's fd passed
		// down to `incarnate run` (exec 48</) would reach the spawner,
		// whose /proc/PID/fd the session can read. Go's fork passes every
		// fd not marked close-on-exec.
		_ = unix.CloseRange(sockDirFd+1, ^uint(0), unix.CLOSE_RANGE_CLOEXEC)
		os.Exit(runKeeper(specR, errW))
	}
	os.Exit(runStage(specR, errW))
}

func runStage(specR, errW *os.File) int {
	// As PID 1 the stage gets only the signals it has handlers for.
	// Installing them is slow, so it runs beside the setup; a signal that
	// arrives before the target exists waits in the channel.
	sigs := make(chan os.Signal, 16)
	go signal.Notify(sigs, ForwardedSignals...)
	spec, st, rec := buildRoot(specR)
	if rec != nil {
		return fail(errW, rec)
	}
	st.attr = &syscall.SysProcAttr{}
	if rec := applyAll(spec.Process, st); rec != nil {
		return fail(errW, rec)
	}
	return spawnAndReap(spec, st.attr, errW, sigs)
}

// buildRoot reads the spec and applies its Root ops: the part the one-shot
// stage and the keeper share.
func buildRoot(specR *os.File) (Spec, *state, *OpError) {
	spec, rec := readSpec(specR)
	if rec != nil {
		return spec, nil, rec
	}
	st := &state{parentGone: func() bool { return peerClosed(errFd) }}
	return spec, st, applyAll(spec.Root, st)
}

func applyAll(ops []Op, st *state) *OpError {
	for _, op := range ops {
		a, ok := op.(applier)
		if !ok {
			return &OpError{Op: op.Kind(), Msg: "op cannot be applied here", Status: op.Status()}
		}
		if err := a.apply(st); err != nil {
			return toOpError(op, err)
		}
	}
	return nil
}

// fail reports rec to the parent and returns the status to exit with. If
// the report cannot be sent the status alone still tells the op.
func fail(errW *os.File, rec *OpError) int {
	_ = writeReport(errW, report{Failure: rec})
	errW.Close()
	return rec.Status
}

// peerClosed reports whether the read end of the pipe on fd is gone,
// which for the error pipe means the parent died.
func peerClosed(fd int) bool {
	pfd := []unix.PollFd{{Fd: int32(fd), Events: unix.POLLOUT}}
	n, err := unix.Poll(pfd, 0)
	return err == nil && n > 0 && pfd[0].Revents&unix.POLLERR != 0
}

// ForwardedSignals are passed on to the target, by clients and by the
// stage. As PID 1 the stage would otherwise ignore them, since the kernel
// delivers to an init only the signals it has handlers for.
var ForwardedSignals = []os.Signal{unix.SIGINT, unix.SIGTERM, unix.SIGHUP, unix.SIGQUIT, unix.SIGUSR1, unix.SIGUSR2, unix.SIGWINCH}

func spawnAndReap(spec Spec, attr *syscall.SysProcAttr, errW *os.File, sigs chan os.Signal) int {
	path, rec := lookPath(spec.Argv[0], spec.Env)
	if rec != nil {
		return fail(errW, rec)
	}
	pid, err := syscall.ForkExec(path, spec.Argv, &syscall.ProcAttr{
		Env:   spec.Env,
		Files: []uintptr{0, 1, 2},
		Sys:   attr,
	})
	if err != nil {
		return fail(errW, execError(path, err))
	}
	releaseStdio()
	go func() {
		for s := range sigs {
			_ = unix.Kill(pid, s.(syscall.Signal))
		}
	}()
	status := reapUntil(pid)
	_ = writeReport(errW, report{Exit: &status})
	errW.Close()
	return status
}

// releaseStdio lets go of the stage's copies of the target's standard
// streams, so that whoever reads the target's output sees EOF when the
// target is done, not when the stage's namespaces have been torn down.
func releaseStdio() {
	null, err := unix.Open("/dev/null", unix.O_RDWR|unix.O_CLOEXEC, 0)
	for fd := 0; fd < 3; fd++ {
		if err == nil {
			_ = unix.Dup3(null, fd, unix.O_CLOEXEC)
		} else {
			_ = unix.Close(fd)
		}
	}
	if err == nil {
		_ = unix.Close(null)
	}
}

// reapUntil reaps every child the namespace hands to PID 1 and returns
// the target's exit status, shell-style (128+n for signal n).
func reapUntil(pid int) int {
	for {
		var ws unix.WaitStatus
		got, err := unix.Wait4(-1, &ws, 0, nil)
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			return 1
		}
		if got == pid {
			return ExitCode(ws)
		}
	}
}

// ExitCode is the status a shell would report for ws.
func ExitCode(ws unix.WaitStatus) int {
	if ws.Signaled() {
		return 128 + int(ws.Signal())
	}
	return ws.ExitStatus()
}

func execError(path string, err error) *OpError {
	rec := &OpError{Op: "exec", Step: "execve", Path: path, Status: StatusCannotExec}
	var errno syscall.Errno
	if errors.As(err, &errno) {
		rec.Errno = errno
		if errno == unix.ENOENT {
			rec.Status = StatusNotFound
		}
	} else {
		rec.Msg = err.Error()
	}
	return rec
}

// defaultPath is used when the target's environment has no PATH.
const defaultPath = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

// lookPath finds name in the sandbox's PATH, as execvp would, after the
// pivot so the sandbox's own files are searched.
func lookPath(name string, env []string) (string, *OpError) {
	if strings.Contains(name, "/") {
		// Checked here rather than left to execve, so that a missing
		// shell can fall back to the next candidate.
		if _, err := os.Stat(name); errors.Is(err, os.ErrNotExist) {
			return "", &OpError{Op: "exec", Step: "stat", Path: name, Errno: unix.ENOENT,
				Msg: "no such file in the session", Status: StatusNotFound}
		}
		return name, nil
	}
	search := defaultPath
	for _, kv := range env {
		if v, ok := strings.CutPrefix(kv, "PATH="); ok {
			search = v
		}
	}
	for _, dir := range filepath.SplitList(search) {
		if dir == "" {
			dir = "."
		}
		p := filepath.Join(dir, name)
		if fi, err := os.Stat(p); err == nil && fi.Mode().IsRegular() && fi.Mode()&0o111 != 0 {
			return p, nil
		}
	}
	return "", &OpError{Op: "exec", Step: "execvp", Path: name, Errno: unix.ENOENT,
		Msg: "not found in the session's PATH", Status: StatusNotFound}
}
