package sandbox

import "golang.org/x/sys/unix"

// The native ABI of the filter: aarch64. arm32 tasks report another
// AUDIT_ARCH and are refused whole.
const (
	auditArchNative  = unix.AUDIT_ARCH_AARCH64
	auditArchForeign = unix.AUDIT_ARCH_ARM
	x32Bit           = 0 // no such ABI here
)

// archSyscalls are the policy's calls only this architecture has: none.
var archSyscalls = map[string]uint32{}
