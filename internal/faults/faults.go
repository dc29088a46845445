// Package faults lets the fault tests kill incarnate at a chosen point of
// a store operation, to prove that a crash there loses nothing. A point
// fires only when INCARNATE_FAULT names it, so in normal use each Point
// costs one string comparison.
package faults

import (
	"os"
	"syscall"
)

// env is read once: the tests set it for the one process they kill.
var armed = os.Getenv("INCARNATE_FAULT")

// Point kills the process with SIGKILL, as a power cut or an OOM kill
// would, when the test armed this point.
func Point(name string) {
	if armed != "" && armed == name {
		_ = syscall.Kill(os.Getpid(), syscall.SIGKILL)
		select {} // the signal is on its way
	}
}
