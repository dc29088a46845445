package sandbox

import "golang.org/x/sys/unix"

// The native ABI of the filter: x86_64, whose kernel also takes x32
// calls (numbers with bit 30 set) under the same AUDIT_ARCH.
const (
	auditArchNative  = unix.AUDIT_ARCH_X86_64
	auditArchForeign = unix.AUDIT_ARCH_I386 // reached through int 0x80
	x32Bit           = 0x40000000
)

// archSyscalls are the policy's calls only this architecture has.
var archSyscalls = map[string]uint32{"ioperm": unix.SYS_IOPERM, "iopl": unix.SYS_IOPL, "uselib": unix.SYS_USELIB}
