package sandbox

import (
	"errors"
	"fmt"
	"os"
	"unsafe"

	seccomp "github.com/elastic/go-seccomp-bpf"
	"github.com/elastic/go-seccomp-bpf/arch"
	"golang.org/x/net/bpf"
	"golang.org/x/sys/unix"
)

// Offsets in struct seccomp_data.
const seccompDataArch = 4

// seccompProgram assembles the session's filter (seccomp_policy.go).
//
// go-seccomp-bpf assembles the rules, with the x32 check amd64 needs, but
// it sends a syscall of a foreign architecture to the policy's default
// action, which is allow here: a process could make any denied call
// through int 0x80 as i386, where the native numbers mean nothing. So the
// program gets its own architecture check in front, which only the
// native ABI passes, and the library's own check then always holds.
func seccompProgram(nested bool) ([]bpf.Instruction, error) {
	native, err := arch.GetInfo("")
	if err != nil {
		return nil, fmt.Errorf("seccomp: %w", err)
	}
	policy := seccomp.Policy{DefaultAction: seccomp.ActionAllow}
	for _, r := range seccompRules(nested) {
		g := seccomp.SyscallGroup{Action: seccomp.ActionErrno | seccomp.Action(r.errno)}
		for _, name := range r.names {
			if _, ok := native.SyscallNames[name]; !ok {
				continue // not a syscall here, so nothing can call it
			}
			if len(r.when) == 0 {
				g.Names = append(g.Names, name)
				continue
			}
			for _, alt := range r.when {
				g.NamesWithCondtions = append(g.NamesWithCondtions, seccomp.NameWithConditions{Name: name, Conditions: seccompConditions(alt)})
			}
		}
		policy.Syscalls = append(policy.Syscalls, g)
	}
	body, err := policy.Assemble()
	if err != nil {
		return nil, fmt.Errorf("seccomp: assemble policy: %w", err)
	}
	guard := []bpf.Instruction{
		bpf.LoadAbsolute{Off: seccompDataArch, Size: 4},
		bpf.JumpIf{Cond: bpf.JumpEqual, Val: uint32(native.ID), SkipTrue: 1},
		bpf.RetConstant{Val: uint32(seccomp.ActionErrno) | uint32(seccompForeignArchErrno)},
	}
	return append(guard, body...), nil
}

func seccompConditions(tests []seccompArgTest) seccomp.ArgumentConditions {
	conds := make(seccomp.ArgumentConditions, 0, len(tests))
	for _, t := range tests {
		op := seccomp.NotEqual
		if t.op == argBitsSet {
			op = seccomp.BitsSet
		}
		conds = append(conds, seccomp.Condition{Argument: t.arg, Operation: op, Value: t.val})
	}
	return conds
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
	insts, err := seccompProgram(nested)
	if err != nil {
		return err
	}
	raw, err := bpf.Assemble(insts)
	if err != nil {
		return fmt.Errorf("seccomp: assemble bpf: %w", err)
	}
	if len(raw) > 0xffff {
		return errors.New("seccomp: filter too long")
	}
	filter := make([]unix.SockFilter, len(raw))
	for i, r := range raw {
		filter[i] = unix.SockFilter{Code: r.Op, Jt: r.Jt, Jf: r.Jf, K: r.K}
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
	if _, err := arch.GetInfo(""); err != nil {
		return fmt.Errorf("seccomp: %w", err)
	}
	return nil
}
