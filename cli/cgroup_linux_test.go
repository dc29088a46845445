package cli

import (
	"fmt"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"
)

// A session's processes are born in its cgroup, in every hierarchy the
// session has one in, and see it as the root of their cgroup namespace;
// a fork bomb inside stops at the session's --pids. The keeper itself
// never migrates (SessionCgroup.BornInside), so this is what guards that
// nothing it starts is left outside.
func TestSessionCgroupHolds(t *testing.T) {
	forEachSpawner(t, func(t *testing.T, h *harness) {
		if h.u.uid != 0 {
			t.Skip("an ordinary user has a session cgroup only where systemd delegates one, and the test users here have none")
		}
		sessionCgroupHolds(t, h)
	})
}

func sessionCgroupHolds(t *testing.T, h *harness) {
	const limit, tries = 24, 60
	h.ok("new", "--base", "bb", "--pids", strconv.Itoa(limit), "--memory", "256M", "s")
	holder := h.command("run", "s", "--", "sleep", "1000")
	if err := holder.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { h.ok("stop", "s"); _ = holder.Wait() }()
	host, err := os.ReadFile(fmt.Sprintf("/proc/%d/cgroup", sessionPid(t, "sleep 1000")))
	if err != nil {
		t.Fatal(err)
	}
	inside := h.ok("run", "s", "--", "cat", "/proc/self/cgroup")
	own, err := os.ReadFile("/proc/self/cgroup")
	if err != nil {
		t.Fatal(err)
	}
	// The session's hierarchies: cgroup2's, and the v1 pids and memory
	// controllers where they are mounted apart.
	for _, ctrl := range []string{"", "pids", "memory"} {
		if _, ok := cgroupIn(string(own), ctrl); !ok {
			continue
		}
		if p, _ := cgroupIn(string(host), ctrl); !strings.Contains(p, "/incarnate-") {
			t.Errorf("a session process is outside the session's cgroup (controller %q): %s", ctrl, p)
		}
		if p, _ := cgroupIn(inside, ctrl); p != "/" {
			t.Errorf("inside, the cgroup namespace (controller %q) is not rooted at the session's cgroup: %q", ctrl, p)
		}
	}
	script := fmt.Sprintf(`i=0; while [ $i -lt %d ]; do sleep 1000 </dev/null >/dev/null 2>&1 & echo started; i=$((i+1)); done; echo all started`, tries)
	out, _, _ := h.run("run", "s", "--", "sh", "-c", script)
	started := strings.Count(out, "started\n") - strings.Count(out, "all started\n")
	if strings.Contains(out, "all started") || started >= limit {
		t.Errorf("%d of %d sleeps started inside a session with --pids %d", started, tries, limit)
	}
	if started == 0 {
		t.Errorf("no sleep started inside at all:\n%s", out)
	}
}

// cgroupIn is the cgroup that /proc/PID/cgroup text gives for controller
// ctrl ("" for cgroup2's line), and whether it has that line.
func cgroupIn(text, ctrl string) (string, bool) {
	for _, l := range strings.Split(text, "\n") {
		parts := strings.SplitN(l, ":", 3)
		if len(parts) == 3 && (parts[1] == ctrl || ctrl != "" && strings.Contains(","+parts[1]+",", ","+ctrl+",")) {
			return parts[2], true
		}
	}
	return "", false
}

// sessionPid waits for the host pid of the process whose command line is
// cmdline.
func sessionPid(t *testing.T, cmdline string) int {
	t.Helper()
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(10 * time.Millisecond) {
		ents, _ := os.ReadDir("/proc")
		for _, e := range ents {
			pid, err := strconv.Atoi(e.Name())
			if err != nil {
				continue
			}
			b, _ := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid))
			if strings.ReplaceAll(strings.TrimRight(string(b), "\x00"), "\x00", " ") == cmdline {
				return pid
			}
		}
	}
	t.Fatalf("no process %q appeared", cmdline)
	return 0
}
