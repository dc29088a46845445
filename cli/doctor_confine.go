package cli

import (
	"fmt"
	"path/filepath"

	"app/incarnate/sandbox"
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
