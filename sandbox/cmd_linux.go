package sandbox

import (
	"encoding/json"
	"fmt"
	"os"
	"os/signal"
	"syscall"

	"golang.org/x/sys/unix"
)

// Cmd runs a Spec inside new namespaces.
type Cmd struct {
	Spec Spec
	// Cloneflags are the CLONE_NEW* flags the stage is created with.
	Cloneflags uintptr
	// Rootless runs the stage as root of a user namespace, for a caller
	// without the machine's root (see mapCallerToRoot).
	Rootless bool
	// The target's standard streams; nil means /dev/null.
	Stdin, Stdout, Stderr *os.File
}

// Namespaces a session always gets: its own mounts, PIDs, host name and
// System V IPC.
const Namespaces = unix.CLONE_NEWNS | unix.CLONE_NEWPID | unix.CLONE_NEWUTS | unix.CLONE_NEWIPC

// Run starts the stage, waits for the target and returns its exit status.
// A failure inside the stage comes back as an *OpError naming the op.
func (c *Cmd) Run() (int, error) {
	if err := c.Spec.Validate(); err != nil {
		return 0, err
	}
	specR, specW, err := os.Pipe()
	if err != nil {
		return 0, err
	}
	defer specW.Close()
	errR, errW, err := os.Pipe()
	if err != nil {
		specR.Close()
		return 0, err
	}
	defer errR.Close()

	// Signals the user sends incarnate go on to the target. The stage has
	// its own process group so a terminal's ^C does not reach it twice.
	// Installing the handlers costs a millisecond and more, so it runs on
	// the other core while the stage is started.
	sigs := make(chan os.Signal, 16)
	notified := make(chan struct{})
	go func() { signal.Notify(sigs, ForwardedSignals...); close(notified) }()
	defer func() { <-notified; signal.Stop(sigs); close(sigs) }()

	pid, err := c.startStage(specR, errW)
	specR.Close()
	errW.Close()
	if err != nil {
		return 0, fmt.Errorf("start sandbox stage: %w", err)
	}
	go func() {
		for s := range sigs {
			_ = unix.Kill(pid, s.(syscall.Signal))
		}
	}()
	// Encoding the spec only now overlaps it with the stage's start-up.
	// The stage reads the whole spec before acting; a short write means
	// it died, and its report or status says why.
	payload, err := json.Marshal(c.Spec)
	if err != nil {
		_ = unix.Kill(pid, unix.SIGKILL)
		reap(pid)
		return 0, err
	}
	_, _ = specW.Write(payload)
	specW.Close()

	rep, readErr := readReport(errR)
	switch {
	case rep != nil && rep.Failure != nil:
		go reap(pid)
		return rep.Failure.Status, rep.Failure
	case rep != nil && rep.Exit != nil:
		// Done: the stage's own exit, and the unmounts it brings, need
		// not be waited for. A goroutine reaps it for long-lived callers.
		go reap(pid)
		return *rep.Exit, nil
	}
	status := reap(pid)
	if readErr != nil {
		return status, readErr
	}
	return status, fmt.Errorf("sandbox stage ended without a report (status %d)", status)
}

func (c *Cmd) startStage(specR, errW *os.File) (int, error) {
	attr := &syscall.SysProcAttr{Cloneflags: c.Cloneflags, Setpgid: true}
	mapCallerToRoot(attr, c.Rootless)
	stdio, closeAll, err := c.stdio()
	if err != nil {
		return 0, err
	}
	defer closeAll()
	// syscall.ForkExec rather than os/exec: os probes pidfd support with
	// an extra fork on its first start, a cost on every `incarnate run`.
	//
	// The stage sets its own parent-death signal (the ParentDeathSig op):
	// Go's Pdeathsig re-checks getppid(), which is 0 in a new PID
	// namespace, and would kill the stage at once.
	return syscall.ForkExec("/proc/self/exe", []string{stageArg0}, &syscall.ProcAttr{
		Env:   []string{},
		Files: append(stdio, specR.Fd(), errW.Fd()), // specFd and errFd
		Sys:   attr,
	})
}

// stdio returns the fds of the target's standard streams, opening
// /dev/null for those not given.
func (c *Cmd) stdio() ([]uintptr, func(), error) {
	var opened []*os.File
	closeAll := func() {
		for _, f := range opened {
			f.Close()
		}
	}
	fds := make([]uintptr, 3)
	for i, f := range []*os.File{c.Stdin, c.Stdout, c.Stderr} {
		if f == nil {
			null, err := os.OpenFile(os.DevNull, os.O_RDWR, 0)
			if err != nil {
				closeAll()
				return nil, nil, err
			}
			opened = append(opened, null)
			f = null
		}
		fds[i] = f.Fd()
	}
	return fds, closeAll, nil
}

// reap waits for pid and returns its exit status, shell-style.
func reap(pid int) int {
	for {
		var ws unix.WaitStatus
		_, err := unix.Wait4(pid, &ws, 0, nil)
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			return 1
		}
		return ExitCode(ws)
	}
}
