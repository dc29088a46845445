package sandbox

import (
	"fmt"
	"os"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"
)

// sessionCap is a capability a session keeps, and why it needs it.
type sessionCap struct {
	cap    uintptr
	name   string
	nested bool // kept only in a nested session
	reason string
}

// sessionCaps is what a session keeps: docker's default set, plus
// SYS_PTRACE, plus SYS_ADMIN for nested sessions. It is an allow list,
// so a capability a newer kernel adds is dropped without anyone having
// to remember it. Every capability is per user namespace here (the
// spawner is inside the session's), so these only ever act on the
// session's own files and processes.
var sessionCaps = []sessionCap{
	{cap: unix.CAP_CHOWN, name: "CAP_CHOWN", reason: "package managers and tar chown what they unpack"},
	{cap: unix.CAP_DAC_OVERRIDE, name: "CAP_DAC_OVERRIDE", reason: "root in the session reads and writes its own files whatever their mode"},
	{cap: unix.CAP_FOWNER, name: "CAP_FOWNER", reason: "chmod and utimes on files root does not own, as installers do"},
	{cap: unix.CAP_FSETID, name: "CAP_FSETID", reason: "keeping setuid/setgid bits when root writes or chowns a file"},
	{cap: unix.CAP_KILL, name: "CAP_KILL", reason: "root signals the session's processes of other uids"},
	{cap: unix.CAP_SETGID, name: "CAP_SETGID", reason: "su, sudo and daemons dropping to a service group"},
	{cap: unix.CAP_SETUID, name: "CAP_SETUID", reason: "su, sudo and daemons dropping to a service user"},
	{cap: unix.CAP_SETPCAP, name: "CAP_SETPCAP", reason: "programs in the session drop capabilities further (capsh, systemd units, bwrap)"},
	{cap: unix.CAP_NET_BIND_SERVICE, name: "CAP_NET_BIND_SERVICE", reason: "servers binding ports below 1024"},
	{cap: unix.CAP_NET_RAW, name: "CAP_NET_RAW", reason: "ping and traceroute"},
	{cap: unix.CAP_SYS_CHROOT, name: "CAP_SYS_CHROOT", reason: "chroot, used by package scripts and build tools"},
	{cap: unix.CAP_MKNOD, name: "CAP_MKNOD", reason: "unpacking archives with device nodes (the kernel refuses real devices in a user namespace)"},
	{cap: unix.CAP_AUDIT_WRITE, name: "CAP_AUDIT_WRITE", reason: "login, su and sshd fail when they cannot write their audit record"},
	{cap: unix.CAP_SETFCAP, name: "CAP_SETFCAP", reason: "package managers set file capabilities (ping, newuidmap)"},
	{cap: unix.CAP_SYS_PTRACE, name: "CAP_SYS_PTRACE", reason: "gdb and strace on the session's own processes of other uids"},
	{cap: unix.CAP_SYS_ADMIN, name: "CAP_SYS_ADMIN", nested: true, reason: "podman, buildah and bwrap inside a nested session make namespaces and mounts"},
}

// keptCaps is the mask of the capabilities a session keeps.
func keptCaps(nested bool) uint64 {
	var m uint64
	for _, c := range sessionCaps {
		if !c.nested || nested {
			m |= 1 << c.cap
		}
	}
	return m
}

// lastCap is the highest capability the running kernel knows.
func lastCap() (uintptr, error) {
	b, err := os.ReadFile("/proc/sys/kernel/cap_last_cap")
	if err != nil {
		return 0, err
	}
	n, err := strconv.ParseUint(strings.TrimSpace(string(b)), 10, 8)
	if err != nil {
		return 0, fmt.Errorf("parse /proc/sys/kernel/cap_last_cap: %w", err)
	}
	return uintptr(n), nil
}

// dropBoundingCaps drops from the calling thread every capability not in
// sessionCaps: from the bounding set, so that no execve (a file with
// capabilities, or root's execve, which grants the bounding set) brings
// it back, and from the effective, permitted and inheritable sets, so
// the thread and what it forks lose it now. The ambient set is cleared.
// All of these are per thread: call it on the locked thread that forks.
func dropBoundingCaps(nested bool) error {
	keep := keptCaps(nested)
	last, err := lastCap()
	if err != nil {
		return err
	}
	// PR_CAPBSET_DROP needs CAP_SETPCAP in the effective set, so the
	// bounding set goes first, while capset has not removed anything.
	for c := uintptr(0); c <= last; c++ {
		if keep&(1<<c) != 0 {
			continue
		}
		in, err := unix.PrctlRetInt(unix.PR_CAPBSET_READ, c, 0, 0, 0)
		if err != nil {
			return fmt.Errorf("prctl(PR_CAPBSET_READ, %d): %w", c, err)
		}
		if in == 0 {
			continue // dropped already: nothing to ask for, even unprivileged
		}
		if err := unix.Prctl(unix.PR_CAPBSET_DROP, c, 0, 0, 0); err != nil {
			return fmt.Errorf("prctl(PR_CAPBSET_DROP, %d): %w", c, err)
		}
	}
	if err := unix.Prctl(unix.PR_CAP_AMBIENT, unix.PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0); err != nil {
		return fmt.Errorf("prctl(PR_CAP_AMBIENT_CLEAR_ALL): %w", err)
	}
	hdr := unix.CapUserHeader{Version: unix.LINUX_CAPABILITY_VERSION_3}
	var data [2]unix.CapUserData
	if err := unix.Capget(&hdr, &data[0]); err != nil {
		return fmt.Errorf("capget: %w", err)
	}
	for i := range data {
		k := uint32(keep >> (32 * i))
		data[i].Effective &= k
		data[i].Permitted &= k
		data[i].Inheritable &= k
	}
	if err := unix.Capset(&hdr, &data[0]); err != nil {
		return fmt.Errorf("capset: %w", err)
	}
	return nil
}
