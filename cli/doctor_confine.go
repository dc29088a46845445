package cli

import (
	"fmt"
	"path/filepath"

	"github.com/incarnate-dev/incarnate/sandbox"
	"github.com/incarnate-dev/incarnate/session"
)

// The confinement checks: what a session's processes are held by here,
// and what is missing.

func checkIdmap(e *doctorEnv) result {
	if !e.root {
		return result{verdict: skip}
	}
	if e.store == "" {
		return bad(fail, "no store to try an idmapped mount in", "see the store check")
	}
	dir := filepath.Join(e.store, "sessions")
	if err := sandbox.CheckIdmap(dir); err != nil {
		return bad(fail, fmt.Sprintf("root's sessions run as an id range of their own, seen through idmapped mounts, and %s cannot be idmapped: %v", dir, err),
			"use Linux 5.19 or later with the store (--root) on ext4, xfs, btrfs or tmpfs; incarnate never falls back to mapping root to root")
	}
	return good("root's sessions run as an unprivileged id range of their own (idmapped layers)")
}

func checkCgroup(*doctorEnv) result {
	mode, err := sandbox.CgroupSupport()
	if err != nil {
		return bad(warn, fmt.Sprintf("sessions run without their own cgroup, so without a pids limit, --memory or --pids: %v", err),
			"run incarnate as root, or under a systemd user session with delegation (systemd-run --user --scope -p Delegate=yes incarnate ...)")
	}
	return good("each session gets its own cgroup (%s), pids.max %d unless --pids", mode, sandbox.DefaultPidsMax)
}

func checkLandlock(*doctorEnv) result {
	abi := sandbox.LandlockABI()
	if abi < 6 {
		detail := "Landlock is off in this kernel"
		if abi > 0 {
			detail = fmt.Sprintf("Landlock ABI %d lacks scoping (ABI 6, Linux 6.12)", abi)
		}
		return bad(warn, detail+": a session can reach the host's abstract unix sockets and signal processes outside it that its ids may signal",
			"use Linux 6.12 or later with lsm=landlock; meanwhile `incarnate new --net none` closes the socket route")
	}
	return good("Landlock ABI %d: sessions reach no abstract unix socket and signal no process outside them", abi)
}

func checkSeccomp(*doctorEnv) result {
	if err := sandbox.SeccompSupported(); err != nil {
		return bad(fail, fmt.Sprintf("the kernel takes no seccomp filter (%v), and sessions do not start without one", err),
			"use a kernel built with CONFIG_SECCOMP_FILTER (every distribution kernel is)")
	}
	return good("every session process runs under the default filter (no new namespaces without --nested, no bpf, io_uring, userfaultfd, keyctl, kexec, modules)")
}

func checkKeeperBinary(*doctorEnv) result {
	path, err := sandbox.KeeperBinary()
	if err != nil {
		return bad(warn, fmt.Sprintf("sessions' keepers start from incarnate itself, which takes longer (%v)", err),
			"build with make build, or install with make install, which put incarnate-keeper beside incarnate")
	}
	return good("sessions' keepers start from %s, the quick way", path)
}

func checkRuntimeDir(e *doctorEnv) result {
	if e.store == "" {
		return result{verdict: skip}
	}
	st, err := session.OpenOutsideUserNS(e.store)
	if err != nil {
		return result{verdict: skip}
	}
	dir, err := st.RuntimeDir()
	if err != nil {
		return bad(fail, fmt.Sprintf("no runtime directory for the keepers' sockets: %v", err),
			"set XDG_RUNTIME_DIR to a directory only you can enter")
	}
	if filepath.Base(dir) == "incarnate" || filepath.Base(dir) == fmt.Sprintf("incarnate-%d", sandbox.HostUID()) {
		return good("keepers listen in %s", dir)
	}
	return bad(warn, fmt.Sprintf("the usual runtime directory belongs to someone else, so keepers listen in the private %s", dir),
		"remove the other one if it is stale, or set XDG_RUNTIME_DIR (a systemd login session sets it)")
}
