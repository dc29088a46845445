package sandbox

import "syscall"

// The seccomp policy of a session, as data: default allow, and a deny
// list in the spirit of docker's and podman's default profiles. Capabilities
// (caps_linux.go) already keep most of these from a session; the filter is
// the second wall, and the only one for what a user namespace grants
// without capabilities over the host (unshare, mount of FS_USERNS_MOUNT
// filesystems, io_uring, userfaultfd).
//
// ptrace is allowed on purpose: gdb and strace on the session's own
// processes must work, the kernel confines ptrace to processes the tracer
// could signal anyway, and seccomp re-checks syscalls a tracer rewrites.

// seccompRule is one entry of the policy. A rule applies to each of its
// syscalls; it refuses the call with errno when when is empty, or when
// every test of any one of its alternatives holds.
type seccompRule struct {
	names []string
	errno syscall.Errno
	// when lists alternatives, each a conjunction of argument tests.
	when [][]seccompArgTest
	// nested sessions (podman, bwrap inside) are not refused this.
	nestedAllows bool
	reason       string
}

// seccompArgTest compares one syscall argument (0-5) with a value.
type seccompArgTest struct {
	arg uint32
	op  seccompArgOp
	val uint64
}

type seccompArgOp int

const (
	argNotEqual seccompArgOp = iota // arg != val
	argBitsSet                      // arg&val != 0
)

// cloneNewNamespaces is every CLONE_NEW* flag. CLONE_NEWTIME (0x80) lies in
// CSIGNAL, which clone(2) reads as the exit signal and never as a flag, so
// only unshare and clone3 can ask for it; testing it costs nothing either,
// as no signal number has that bit.
const cloneNewNamespaces = syscall.CLONE_NEWNS | syscall.CLONE_NEWCGROUP | syscall.CLONE_NEWUTS |
	syscall.CLONE_NEWIPC | syscall.CLONE_NEWUSER | syscall.CLONE_NEWPID | syscall.CLONE_NEWNET |
	syscall.CLONE_NEWTIME

// cloneFlagsArg is where clone(2) takes its flags: first on every
// architecture the filter is built for (amd64, 386, arm64, arm); only
// s390 swaps the first two arguments.
const cloneFlagsArg = 0

// keyctlJoinSessionKeyring is KEYCTL_JOIN_SESSION_KEYRING.
const keyctlJoinSessionKeyring = 1

// seccompForeignArchErrno is what a syscall of another ABI than the
// native one gets (i386 through int 0x80 on amd64, x32, arm32 on arm64):
// the deny list is written in native numbers, which mean other calls
// there, so the whole ABI is refused, as the library refuses x32.
const seccompForeignArchErrno = syscall.ENOSYS

// seccompPolicy reads as the threat model. Rules are checked in order and
// the first that matches decides; a syscall no rule names is allowed. A
// name the architecture lacks (vm86 on amd64) is skipped: it cannot be
// called there.
var seccompPolicy = []seccompRule{
	{names: []string{"kexec_load", "kexec_file_load"}, errno: syscall.EPERM,
		reason: "replacing the running kernel"},
	{names: []string{"init_module", "finit_module", "delete_module"}, errno: syscall.EPERM,
		reason: "loading and unloading kernel code"},
	{names: []string{"bpf"}, errno: syscall.EPERM,
		reason: "eBPF maps and programs: a large kernel surface and a way to watch the host"},
	{names: []string{"perf_event_open"}, errno: syscall.EPERM,
		reason: "performance events leak kernel addresses and host activity, and have a long exploit history"},
	{names: []string{"userfaultfd"}, errno: syscall.EPERM,
		reason: "stalls the kernel's page faults at will, the usual tool to win kernel races"},
	{names: []string{"io_uring_setup", "io_uring_enter", "io_uring_register"}, errno: syscall.EPERM,
		reason: "io_uring's operations are not syscalls, so they bypass this filter, and it has a long CVE list"},
	{names: []string{"open_by_handle_at"}, errno: syscall.EPERM,
		reason: "opens any inode of a mounted filesystem by handle, past the mount tree (docker's 'shocker' escape)"},
	{names: []string{"keyctl"}, errno: syscall.ENOSYS,
		when: [][]seccompArgTest{
			{{arg: 0, op: argNotEqual, val: keyctlJoinSessionKeyring}},
			{{arg: 1, op: argNotEqual, val: 0}},
		},
		reason: "keyrings are not namespaced: only keyctl(KEYCTL_JOIN_SESSION_KEYRING, NULL), a fresh anonymous keyring, is let through; " +
			"ENOSYS, not EPERM, because runc and crun in a nested session carry on without keyrings only on ENOSYS"},
	{names: []string{"add_key", "request_key"}, errno: syscall.ENOSYS,
		reason: "keyrings are not namespaced; ENOSYS as for keyctl"},
	{names: []string{"acct"}, errno: syscall.EPERM,
		reason: "process accounting is host-wide"},
	{names: []string{"swapon", "swapoff"}, errno: syscall.EPERM,
		reason: "swap is host-wide"},
	{names: []string{"reboot"}, errno: syscall.EPERM,
		reason: "rebooting the host, or killing the session's init from inside"},
	{names: []string{"settimeofday", "clock_settime", "adjtimex", "clock_adjtime"}, errno: syscall.EPERM,
		reason: "the clock is host-wide"},
	{names: []string{"syslog"}, errno: syscall.EPERM,
		reason: "the kernel log leaks kernel addresses and host activity"},
	{names: []string{"quotactl", "quotactl_fd"}, errno: syscall.EPERM,
		reason: "disk quotas are host administration"},
	{names: []string{"ioperm", "iopl"}, errno: syscall.EPERM,
		reason: "raw I/O port access"},
	{names: []string{"lookup_dcookie", "nfsservctl", "uselib", "vm86", "vm86old"}, errno: syscall.EPERM,
		reason: "obsolete calls no program needs, kept only as attack surface"},
	{names: []string{"mount", "umount2", "pivot_root", "fsopen", "fsconfig", "fsmount", "fspick",
		"move_mount", "open_tree", "open_tree_attr", "mount_setattr"}, errno: syscall.EPERM, nestedAllows: true,
		reason: "a session's tree is built before it starts and nothing in it mounts; in a user namespace " +
			"mounting reaches filesystem code written for root"},
	{names: []string{"unshare", "setns"}, errno: syscall.EPERM, nestedAllows: true,
		reason: "a new user namespace gives back every capability, and with them the kernel surface they closed"},
	{names: []string{"clone"}, errno: syscall.EPERM, nestedAllows: true,
		when:   [][]seccompArgTest{{{arg: cloneFlagsArg, op: argBitsSet, val: cloneNewNamespaces}}},
		reason: "clone with CLONE_NEW* is unshare by another name; plain clone (fork, threads) passes"},
	{names: []string{"clone3"}, errno: syscall.ENOSYS, nestedAllows: true,
		reason: "its flags are in memory a filter cannot read; ENOSYS makes glibc and Go fall back to clone, checked above (as docker does)"},
}

// seccompRules is the policy a session gets.
func seccompRules(nested bool) []seccompRule {
	var rules []seccompRule
	for _, r := range seccompPolicy {
		if nested && r.nestedAllows {
			continue
		}
		rules = append(rules, r)
	}
	return rules
}
