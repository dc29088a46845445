package sandbox

import (
	"errors"
	"fmt"
	"syscall"
)

// InvalidOpError is a builder refusing an op before any child exists.
type InvalidOpError struct {
	Op     string
	Path   string
	Reason string
}

func (e *InvalidOpError) Error() string {
	if e.Path == "" {
		return fmt.Sprintf("invalid %s op: %s", e.Op, e.Reason)
	}
	return fmt.Sprintf("invalid %s op on %q: %s", e.Op, e.Path, e.Reason)
}

// ErrInvalidOp matches every *InvalidOpError with errors.Is.
var ErrInvalidOp = errors.New("invalid op")

func (e *InvalidOpError) Is(target error) bool { return target == ErrInvalidOp }

// OpError is an op that failed inside the child, as the stage reported it.
type OpError struct {
	Op     string        // the op's Kind, or "exec" for the target itself
	Step   string        // the syscall or sub-step that failed
	Path   string        // the path it was applied to, if any
	Errno  syscall.Errno // the kernel's answer, 0 if none
	Status int           // the fallback exit status of this failure
	Msg    string        // extra detail
}

func (e *OpError) Error() string {
	s := "sandbox: " + e.Op
	if e.Step != "" && e.Step != e.Op {
		s += " (" + e.Step + ")"
	}
	if e.Path != "" {
		s += fmt.Sprintf(" %q", e.Path)
	}
	if e.Msg != "" {
		s += ": " + e.Msg
	}
	if e.Errno != 0 {
		s += ": " + e.Errno.Error()
	}
	return s
}

// Unwrap lets errors.Is(err, syscall.ENOENT) and friends work.
func (e *OpError) Unwrap() error {
	if e.Errno == 0 {
		return nil
	}
	return e.Errno
}

// ExitStatus is the status incarnate exits with for this failure.
func (e *OpError) ExitStatus() int { return e.Status }
