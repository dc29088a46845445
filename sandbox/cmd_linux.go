package sandbox

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"os/signal"
	"syscall"

	"golang.org/x/sys/unix"
)

// Cmd runs a Spec inside new namespaces.
type Cmd struct {
	Spec Spec
	// Cloneflags are the CLONE_NEW* flags the stage is created with.
	Cloneflags uintptr
	// Rootless adds a user namespace mapping the caller to root inside,
	// for a caller without privileges of its own.
	Rootless bool
	Stdin    io.Reader
	Stdout   io.Writer
	Stderr   io.Writer
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
	payload, err := json.Marshal(c.Spec)
	if err != nil {
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

	cmd := c.stageCmd(specR, errW)
	// Signals the user sends incarnate go on to the target. The stage has
	// its own process group so a terminal's ^C does not reach it twice.
	sigs := make(chan os.Signal, 16)
	signal.Notify(sigs, forwarded...)
	defer signal.Stop(sigs)

	err = cmd.Start()
	specR.Close()
	errW.Close()
	if err != nil {
		return 0, fmt.Errorf("start sandbox stage: %w", err)
	}
	go func() {
		for s := range sigs {
			_ = cmd.Process.Signal(s)
		}
	}()
	// The stage reads the whole spec before acting; a short write means
	// it died, and its error record or status says why.
	_, _ = specW.Write(payload)
	specW.Close()

	rec, readErr := readRecord(errR)
	status, waitErr := waitStatus(cmd)
	switch {
	case rec != nil:
		return rec.Status, rec
	case readErr != nil:
		return status, readErr
	}
	return status, waitErr
}

func (c *Cmd) stageCmd(specR, errW *os.File) *exec.Cmd {
	attr := &syscall.SysProcAttr{Cloneflags: c.Cloneflags, Setpgid: true}
	if c.Rootless {
		attr.Cloneflags |= unix.CLONE_NEWUSER
		attr.UidMappings = []syscall.SysProcIDMap{{ContainerID: 0, HostID: os.Getuid(), Size: 1}}
		attr.GidMappings = []syscall.SysProcIDMap{{ContainerID: 0, HostID: os.Getgid(), Size: 1}}
		attr.GidMappingsEnableSetgroups = false
	}
	// The stage sets its own parent-death signal (the ParentDeathSig op):
	// Go's Pdeathsig re-checks getppid(), which is 0 in a new PID
	// namespace, and would kill the stage at once.
	return &exec.Cmd{
		Path:        "/proc/self/exe",
		Args:        []string{stageArg0},
		Env:         []string{},
		Stdin:       c.Stdin,
		Stdout:      c.Stdout,
		Stderr:      c.Stderr,
		ExtraFiles:  []*os.File{specR, errW}, // become specFd and errFd
		SysProcAttr: attr,
	}
}

// readRecord reads the stage's error record; EOF without one means the
// target was executed.
func readRecord(r io.Reader) (*OpError, error) {
	b, err := io.ReadAll(r)
	if err != nil || len(b) == 0 {
		return nil, err
	}
	rec := &OpError{}
	if err := json.Unmarshal(b, rec); err != nil {
		return nil, fmt.Errorf("sandbox stage sent a garbled error record: %w", err)
	}
	return rec, nil
}

func waitStatus(cmd *exec.Cmd) (int, error) {
	err := cmd.Wait()
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		return ExitCode(unix.WaitStatus(ee.Sys().(syscall.WaitStatus))), nil
	}
	if err != nil {
		return 1, err
	}
	return 0, nil
}
