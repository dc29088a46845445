package sandbox

import (
	"fmt"
	"os"

	"github.com/landlock-lsm/go-landlock/landlock"
	ll "github.com/landlock-lsm/go-landlock/landlock/syscall"
	"golang.org/x/sys/unix"
)

// landlockScopes is what a session may not reach outside itself: abstract
// unix sockets (the host's D-Bus, X11 and systemd sockets are abstract,
// and network namespaces aside nothing else guards them) and signals to
// processes outside the session's Landlock domain. No filesystem or
// network rule: the session's view of the tree is the mount namespace's
// job.
const landlockScopes = landlock.ScopedSet(ll.ScopeAbstractUnixSocket | ll.ScopeSignal)

// landlockErrataSignalScope is the erratum bit of the fix to signal
// scoping (6.12 LTS kernels before it let a scoped process signal out
// through a thread of its own).
const landlockErrataSignalScope = 1 << 1

// LandlockABI is the Landlock ABI the kernel offers, 0 when it has none
// or it is off; a kernel whose signal scoping lacks its fix counts as
// ABI 5, as go-landlock counts it, since scoping is what incarnate uses.
func LandlockABI() int {
	abi, err := ll.LandlockGetABIVersion()
	if err != nil || abi < 0 {
		return 0
	}
	if abi >= 6 {
		errata, err := ll.LandlockGetErrata()
		if err != nil || errata&landlockErrataSignalScope == 0 {
			abi = 5
		}
	}
	return abi
}

// landlockScope puts the calling thread, and what it forks from now on,
// in a Landlock domain that only scopes (ABI 6): the session can neither
// connect to an abstract unix socket nor signal a process outside it.
// Below ABI 6 it does nothing and says which ABI there is.
//
// go-landlock's Restrict functions restrict every thread of the process,
// which would do too, but NewRulesetFD builds the same best-effort,
// scope-only ruleset and lets us enforce it on this thread alone: the
// spawner's other threads (the Go runtime's) never run session code.
// no_new_privs is set by the caller already, as enforcement requires.
func landlockScope() (abi int, err error) {
	abi = LandlockABI()
	if abi < 6 {
		return abi, nil
	}
	fd, flags, err := landlock.MustConfig(landlockScopes).BestEffort().NewRulesetFD()
	if err != nil {
		return abi, fmt.Errorf("landlock ruleset: %w", err)
	}
	if fd < 0 {
		return abi, nil // nothing the kernel could enforce
	}
	defer unix.Close(fd)
	if err := ll.LandlockRestrictSelf(fd, flags); err != nil {
		return abi, os.NewSyscallError("landlock_restrict_self", err)
	}
	return abi, nil
}
