package cli

import (
	"strings"
	"testing"
	"time"
)

// keeperStart is when the session's PID 1, its keeper, started (in
// clock ticks since boot): the same for two commands that joined one
// keeper.
func keeperStart(t *testing.T, h *harness, name string) string {
	t.Helper()
	stat := h.ok("run", name, "--", "cat", "/proc/1/stat")
	f := strings.Fields(stat[strings.LastIndexByte(stat, ')')+1:])
	if len(f) < 20 {
		t.Fatalf("/proc/1/stat inside: %q", stat)
	}
	return f[19] // starttime, the 22nd field
}

// A keeper stays a while after its last command, for the next to join;
// whatever needs the session free asks it to go, and ls measures it as
// a free session.
func TestKeeperLingers(t *testing.T) {
	forEachUser(t, func(t *testing.T, h *harness) {
		h.linger = "60s"
		h.ok("new", "--base", "bb", "s")
		first := keeperStart(t, h, "s")
		time.Sleep(100 * time.Millisecond)
		if sessionFree(h, "s") {
			t.Fatal("the keeper went at once with INCARNATE_LINGER=60s")
		}
		if again := keeperStart(t, h, "s"); again != first {
			t.Errorf("the second command started a keeper of its own (start %s, was %s)", again, first)
		}
		h.ok("run", "s", "--", "sh", "-c", "echo x > /root/f")
		if out := h.ok("ls"); strings.Contains(out, "~") || lsColumn(out, "s", 4) != "1" {
			t.Errorf("ls of a lingering session with one change:\n%s", out)
		}
		// Each of these needs the session free, right after a command.
		h.ok("commit", "s", "taken")
		h.ok("run", "s", "--", "true")
		h.ok("rename", "s", "s2")
		h.ok("run", "s2", "--", "true")
		h.ok("reset", "--yes", "s2")
		h.ok("run", "s2", "--", "true")
		h.ok("rm", "--yes", "s2")
		if regexpLineName(h.ok("ls"), "s2") {
			t.Errorf("rm left the session")
		}
	})
}

// What runs is never released: a change that needs the session free is
// refused while a command runs, lingering or not.
func TestLingerKeepsWhatRuns(t *testing.T) {
	h := newHarness(t, rootUser)
	h.linger = "60s"
	h.ok("new", "--base", "bb", "s")
	bg := h.command("run", "s", "--", "sleep", "100")
	if err := bg.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { _ = bg.Process.Kill(); _ = bg.Wait() }()
	waitFor(t, "the sleep to run", func() bool { return regexpLine(h.ok("ls"), "s", "1") })
	if _, errOut, status := h.run("reset", "--yes", "s"); status == 0 || !strings.Contains(errOut, "in use") {
		t.Errorf("reset while a command runs: status %d, %q; want a refusal", status, errOut)
	}
	if out := h.ok("run", "s", "--", "sh", "-c", "cat /proc/[0-9]*/comm"); !strings.Contains(out, "sleep\n") {
		t.Errorf("the sleep is gone after a refused reset")
	}
	h.ok("stop", "s")
	waitFor(t, "stop to end a lingering keeper", func() bool { return sessionFree(h, "s") })
}

// A keeper goes by itself once it has lingered its time.
func TestLingerEnds(t *testing.T) {
	h := newHarness(t, rootUser)
	h.linger = "500ms"
	h.ok("new", "--base", "bb", "s")
	h.ok("run", "s", "--", "true")
	waitFor(t, "the keeper to go after 500ms", func() bool { return sessionFree(h, "s") })

	h.linger = "soon"
	if _, errOut, status := h.run("ls"); status != 2 || !strings.Contains(errOut, "INCARNATE_LINGER") {
		t.Errorf("INCARNATE_LINGER=soon: status %d, %q; want a usage error naming it", status, errOut)
	}
}

// lsColumn is column col (from 0) of session name's line in ls.
func lsColumn(out, name string, col int) string {
	for _, line := range strings.Split(out, "\n") {
		if f := strings.Fields(line); len(f) > col && f[0] == name {
			return f[col]
		}
	}
	return ""
}
