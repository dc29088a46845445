package sandbox

import (
	"errors"
	"fmt"
	"os"
	"runtime"
	"syscall"
	"unsafe"

	"golang.org/x/net/bpf"
	"golang.org/x/sys/unix"
)

// Offsets in struct seccomp_data. Arguments are 64 bits wide, their low
// word first on the little-endian machines the filter is built for.
const (
	seccompDataNr   = 0
	seccompDataArch = 4
	seccompDataArgs = 16
)

// seccompProgram assembles the session's filter (seccomp_policy.go) with
// x/net/bpf's instruction types. Its shape:
//
//	arch != native ABI        -> ENOSYS (i386 through int 0x80, arm32:
//	                             native numbers mean other calls there)
//	nr has the x32 bit        -> ENOSYS
//	for each rule, each call:  nr == call and its conditions hold -> errno
//	                          -> allow
//
// Built here rather than with a seccomp library: the one that fits
// (elastic/go-seccomp-bpf) builds syscall tables of every architecture at
// init, a millisecond on every start of incarnate, and it sent foreign
// ABIs to the default action.
func seccompProgram(nested bool) ([]bpf.Instruction, error) {
	ret := func(e syscall.Errno) bpf.Instruction {
		return bpf.RetConstant{Val: uint32(unix.SECCOMP_RET_ERRNO) | uint32(e)}
	}
	prog := []bpf.Instruction{
		bpf.LoadAbsolute{Off: seccompDataArch, Size: 4},
		bpf.JumpIf{Cond: bpf.JumpEqual, Val: auditArchNative, SkipTrue: 1},
		ret(seccompForeignArchErrno),
		bpf.LoadAbsolute{Off: seccompDataNr, Size: 4},
	}
	if x32Bit != 0 {
		prog = append(prog, bpf.JumpIf{Cond: bpf.JumpGreaterOrEqual, Val: x32Bit, SkipFalse: 1}, ret(seccompForeignArchErrno))
	}
	numbers := syscallNumbers()
	if numbers == nil {
		return nil, fmt.Errorf("seccomp: no policy for %s yet", runtime.GOARCH)
	}
	for _, r := range seccompRules(nested) {
		block := ruleBlock(r, ret(r.errno))
		if len(block) > 255 {
			return nil, fmt.Errorf("seccomp: the rule for %v is too long", r.names)
		}
		for _, name := range r.names {
			nr, ok := numbers[name]
			if !ok {
				continue // not a syscall here, so nothing can call it
			}
			prog = append(prog,
				bpf.LoadAbsolute{Off: seccompDataNr, Size: 4},
				bpf.JumpIf{Cond: bpf.JumpEqual, Val: nr, SkipFalse: uint8(len(block))})
			prog = append(prog, block...)
		}
	}
	return append(prog, bpf.RetConstant{Val: unix.SECCOMP_RET_ALLOW}), nil
}

// ruleBlock is what follows a match of r's call number: deny, or deny
// when every test of one of its alternatives holds, else fall through
// past the block.
func ruleBlock(r seccompRule, deny bpf.Instruction) []bpf.Instruction {
	if len(r.when) == 0 {
		return []bpf.Instruction{deny}
	}
	var block []bpf.Instruction
	for _, alt := range r.when {
		// Built from the end: each test's failure skips what follows it
		// in this alternative, the deny included.
		tail := []bpf.Instruction{deny}
		for i := len(alt) - 1; i >= 0; i-- {
			tail = append(argTest(alt[i], len(tail)), tail...)
		}
		block = append(block, tail...)
	}
	return block
}

// argTest checks one 64-bit argument in two words, going on when it holds
// and skipping fail instructions past itself when it does not.
func argTest(t seccompArgTest, fail int) []bpf.Instruction {
	lo := bpf.LoadAbsolute{Off: seccompDataArgs + 8*t.arg, Size: 4}
	hi := bpf.LoadAbsolute{Off: seccompDataArgs + 8*t.arg + 4, Size: 4}
	vlo, vhi := uint32(t.val), uint32(t.val>>32)
	if t.op == argBitsSet { // holds if either word shares a bit
		return []bpf.Instruction{lo, bpf.JumpIf{Cond: bpf.JumpBitsSet, Val: vlo, SkipTrue: 2},
			hi, bpf.JumpIf{Cond: bpf.JumpBitsSet, Val: vhi, SkipFalse: uint8(fail)}}
	}
	// argNotEqual: holds if either word differs.
	return []bpf.Instruction{lo, bpf.JumpIf{Cond: bpf.JumpEqual, Val: vlo, SkipFalse: 2},
		hi, bpf.JumpIf{Cond: bpf.JumpEqual, Val: vhi, SkipTrue: uint8(fail)}}
}

// seccompFilter is the session's filter as the kernel takes it.
func seccompFilter(nested bool) ([]unix.SockFilter, error) {
	insts, err := seccompProgram(nested)
	if err != nil {
		return nil, err
	}
	raw, err := bpf.Assemble(insts)
	if err != nil {
		return nil, fmt.Errorf("seccomp: assemble bpf: %w", err)
	}
	if len(raw) > 0xffff {
		return nil, errors.New("seccomp: filter too long")
	}
	filter := make([]unix.SockFilter, len(raw))
	for i, r := range raw {
		filter[i] = unix.SockFilter{Code: r.Op, Jt: r.Jt, Jf: r.Jf, K: r.K}
	}
	return filter, nil
}

// installSeccomp loads the session's filter on every thread of the
// process (SECCOMP_FILTER_FLAG_TSYNC): the spawner's other threads never
// run session code, but nothing is gained by leaving them unfiltered.
// no_new_privs must be set on the calling thread; the kernel then sets
// it on the others. Filters are inherited across fork and kept across
// execve.
//
// The library's LoadFilter would do the load, but it can only take a
// Policy, not the guarded program above, so the seccomp call is here.
func installSeccomp(nested bool) error {
	filter, err := seccompFilter(nested)
	if err != nil {
		return err
	}
	prog := unix.SockFprog{Len: uint16(len(filter)), Filter: &filter[0]}
	r, _, e := unix.Syscall(unix.SYS_SECCOMP, unix.SECCOMP_SET_MODE_FILTER, unix.SECCOMP_FILTER_FLAG_TSYNC, uintptr(unsafe.Pointer(&prog)))
	if e != 0 {
		return os.NewSyscallError("seccomp(SECCOMP_SET_MODE_FILTER)", e)
	}
	if r != 0 {
		// TSYNC names the thread it could not bring along (one under a
		// filter of its own), and loads nothing.
		return fmt.Errorf("seccomp(SECCOMP_SET_MODE_FILTER): thread %d has another filter", r)
	}
	return nil
}

// SeccompSupported reports whether the kernel takes the session's filter:
// seccomp in filter mode, able to return an errno.
func SeccompSupported() error {
	if _, err := unix.PrctlRetInt(unix.PR_GET_SECCOMP, 0, 0, 0, 0); err != nil {
		return os.NewSyscallError("prctl(PR_GET_SECCOMP)", err) // EINVAL: a kernel without seccomp
	}
	action := uint32(unix.SECCOMP_RET_ERRNO)
	_, _, e := unix.Syscall(unix.SYS_SECCOMP, unix.SECCOMP_GET_ACTION_AVAIL, 0, uintptr(unsafe.Pointer(&action)))
	if e != 0 {
		return os.NewSyscallError("seccomp(SECCOMP_GET_ACTION_AVAIL, SECCOMP_RET_ERRNO)", e)
	}
	return nil
}
