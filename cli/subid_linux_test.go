package cli

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"

	"github.com/incarnate-dev/incarnate/sandbox"
)

// subIDFirst is the first host id of the range the tests give uid 65534.
const subIDFirst = 2000000000

// subIDUser is uid 65534 with a sub-id range of its own (giveSubIDs).
var subIDUser = user{"sub-ids", 65534, 65534, true}

// giveSubIDs writes uid 65534's range into /etc/subuid and /etc/subgid,
// and puts the files back after the test.
func giveSubIDs(t *testing.T) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Fatal("only root can give uid 65534 a sub-id range")
	}
	if _, err := sandbox.SubIDTools(); err != nil {
		t.Fatalf("%v: the sub-id tests need it (.ci/run installs uidmap)", err)
	}
	for _, file := range []string{"/etc/subuid", "/etc/subgid"} {
		old, err := os.ReadFile(file)
		if err != nil && !os.IsNotExist(err) {
			t.Fatal(err)
		}
		var keep []string
		for _, l := range strings.SplitAfter(string(old), "\n") {
			if l != "" && !strings.HasPrefix(l, "nobody:") && !strings.HasPrefix(l, "65534:") {
				keep = append(keep, l)
			}
		}
		keep = append(keep, fmt.Sprintf("65534:%d:65536\n", subIDFirst))
		if err := os.WriteFile(file, []byte(strings.Join(keep, "")), 0o644); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() {
			if old == nil {
				_ = os.Remove(file)
				return
			}
			_ = os.WriteFile(file, old, 0o644)
		})
	}
}

func needRoot(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root, to give uid 65534 a range in /etc/subuid and /etc/subgid")
	}
}

// hostOwner is the host uid and gid of path.
func hostOwner(t *testing.T, path string) (int, int) {
	t.Helper()
	var st syscall.Stat_t
	if err := syscall.Lstat(path, &st); err != nil {
		t.Fatal(err)
	}
	return int(st.Uid), int(st.Gid)
}

// With sub-id ranges, an ordinary user's session holds files of other
// users (here uid 42, in a directory only it may enter), and every store
// operation still works on them: ls, diff, clone (exact owners), reset
// and rm (purged to the last file).
func TestSubIDSessionsHoldOtherUsersFiles(t *testing.T) {
	needRoot(t)
	h := newHarness(t, subIDUser)
	h.ok("new", "--base", "bb", "s")
	if out := h.ok("run", "s", "--", "/bin/sh", "-c",
		"mkdir -p /srv/d && echo x > /srv/d/f && chown -R 42:42 /srv/d && chmod 700 /srv/d && stat -c %u:%g /srv/d/f"); out != "42:42\n" {
		t.Fatalf("owner inside: %q", out)
	}
	upper := func(name string) string { return filepath.Join(h.store, "sessions", name, "upper") }
	want := subIDFirst + 41 // inside id 1 is the range's first
	if u, g := hostOwner(t, filepath.Join(upper("s"), "srv/d/f")); u != want || g != want {
		t.Fatalf("on the host /srv/d/f belongs to %d:%d, want %d:%d", u, g, want, want)
	}
	if out := h.ok("diff", "s"); !strings.Contains(out, "A /srv/d/f\n") {
		t.Errorf("diff does not list /srv/d/f:\n%s", out)
	}
	var rows []lsRow
	if err := json.Unmarshal([]byte(h.ok("ls", "--json")), &rows); err != nil || len(rows) != 1 || rows[0].Changes < 3 {
		t.Errorf("ls --json: %+v, %v", rows, err)
	}
	h.ok("clone", "s", "copy")
	if u, g := hostOwner(t, filepath.Join(upper("copy"), "srv/d/f")); u != want || g != want {
		t.Errorf("the clone's /srv/d/f belongs to %d:%d, want %d:%d", u, g, want, want)
	}
	if out := h.ok("run", "copy", "--", "cat", "/srv/d/f"); out != "x\n" {
		t.Errorf("the clone's file reads %q", out)
	}
	h.ok("reset", "--yes", "s")
	h.ok("rm", "--yes", "copy")
	waitFor(t, "the purge of reset and rm", func() bool { return emptyDir(filepath.Join(h.store, "trash")) })
	if _, err := os.Lstat(filepath.Join(upper("s"), "srv")); !os.IsNotExist(err) {
		t.Errorf("reset left /srv in the upper dir: %v", err)
	}
}

// Without sub-ids (INCARNATE_SUBIDS=0, or no ranges) the session maps
// the user alone, so another owner cannot even be set.
func TestWithoutSubIDsOnlyTheUserIsMapped(t *testing.T) {
	needRoot(t)
	u := subIDUser
	u.subIDs = false // the ranges are there (giveSubIDs), but turned off
	giveSubIDs(t)
	h := newHarness(t, u)
	h.ok("new", "--base", "bb", "s")
	if out := h.ok("run", "s", "--", "cat", "/proc/self/uid_map"); len(strings.Split(strings.TrimSpace(out), "\n")) != 1 {
		t.Errorf("uid_map inside without sub-ids:\n%s", out)
	}
	if _, _, status := h.run("run", "s", "--", "chown", "42", "/tmp"); status == 0 {
		t.Error("chown to uid 42 worked with only the user mapped")
	}
}

// A directory imported with sub-ids keeps the owners the namespace maps
// (here the file of the host's sub-id that is uid 42 inside) and gives the
// user (root inside) what it cannot map (the host's root).
func TestSubIDDirectoryImportOwners(t *testing.T) {
	needRoot(t)
	h := newHarness(t, subIDUser)
	mapped := filepath.Join(h.base, "etc", "mapped")
	if err := os.WriteFile(mapped, []byte("m\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Chown(mapped, subIDFirst+41, subIDFirst+41); err != nil {
		t.Fatal(err)
	}
	if u, _ := hostOwner(t, filepath.Join(h.base, "etc", "os-release")); u != 0 {
		t.Fatalf("the busybox root's files should be the host root's, got uid %d", u)
	}
	// A set-uid program of the host's root keeps its bit as root's inside
	// (chown clears it; the import puts it back).
	suid := filepath.Join(h.base, "bin", "suid")
	if err := os.WriteFile(suid, []byte("#!/bin/sh\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(suid, 0o755|os.ModeSetuid|os.ModeSetgid); err != nil {
		t.Fatal(err)
	}
	h.ok("base", "import", "owners", h.base)
	h.ok("new", "--base", "owners", "s")
	if out := h.ok("run", "s", "--", "stat", "-c", "%u:%g %A", "/etc/mapped", "/etc/os-release", "/bin/suid"); out != "42:42 -rw-r--r--\n0:0 -rw-r--r--\n0:0 -rwsr-sr-x\n" {
		t.Errorf("owners inside: %q, want 42:42 for the mapped file, 0:0 for the host root's, and the set-id bits kept", out)
	}
}

// ls, run and enter skip the re-execution into the sub-id namespace
// (some 30 ms) when they can do without it: ls when its figures are
// cached or readable from outside, run and enter when the session's
// keeper runs. What they show is the same either way. An unshare that
// logs its calls counts the re-executions.
func TestSubIDNamespaceOnlyWhenNeeded(t *testing.T) {
	needRoot(t)
	h := newHarness(t, subIDUser)
	h.path = filepath.Join(h.dir, "wrap")
	log := filepath.Join(h.dir, "unshare.log")
	script := "#!/bin/sh\necho \"$*\" >> " + log + "\nexec /usr/bin/unshare \"$@\"\n"
	if err := os.MkdirAll(h.path, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(h.path, "unshare"), []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(log, nil, 0o666); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(log, 0o666); err != nil { // past the umask
		t.Fatal(err)
	}
	calls := func() int { b, _ := os.ReadFile(log); return strings.Count(string(b), "\n") }
	expect := func(reexecs int, want string, args ...string) {
		t.Helper()
		before := calls()
		out := h.ok(args...)
		if got := calls() - before; got != reexecs {
			t.Errorf("incarnate %s re-executed %d times, want %d", strings.Join(args, " "), got, reexecs)
		}
		if !strings.Contains(out, want) {
			t.Errorf("incarnate %s printed %q, want it to hold %q", strings.Join(args, " "), out, want)
		}
	}
	expect(1, "created", "new", "--base", "bb", "s")
	expect(0, "4.0K  0 ", "ls") // an empty upper dir is measured from outside
	expect(1, "42:42", "run", "s", "--", "/bin/sh", "-c", "mkdir /srv-d && echo x > /srv-d/f && chown -R 42:42 /srv-d && chmod 700 /srv-d && stat -c %u:%g /srv-d/f")
	expect(1, "12.0K  2 ", "ls") // /srv-d is closed to the user: measured inside
	expect(0, "12.0K  2 ", "ls") // cached
	stats, _ := os.ReadFile(filepath.Join(h.store, "sessions", "s", "stats.json"))
	if !strings.Contains(string(stats), `"userns": true`) {
		t.Errorf("stats.json does not say the next measuring needs the namespace:\n%s", stats)
	}
	// The client that falls back to the namespace did no repairs outside
	// it first: no purge of its own, left a zombie by the re-execution.
	junk := filepath.Join(h.store, "trash", "junk-1", "x")
	if err := os.MkdirAll(junk, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Chown(filepath.Dir(junk), h.u.uid, h.u.gid); err != nil {
		t.Fatal(err)
	}
	if err := os.Chown(junk, h.u.uid, h.u.gid); err != nil {
		t.Fatal(err)
	}
	bg := h.command("run", "s", "--", "sleep", "1000")
	if err := bg.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = bg.Process.Kill(); _ = bg.Wait() })
	waitFor(t, "the keeper", func() bool { return len(processesWith("incarnate:keeper")) > 0 })
	waitFor(t, "the purge of trash/", func() bool { return emptyDir(filepath.Join(h.store, "trash")) })
	waitFor(t, "the client to have no zombie children", func() bool { return len(zombieChildren(bg.Process.Pid)) == 0 })
	view := []string{"run", "s", "--", "/bin/sh", "-c", "stat -c %u:%g /srv-d/f; wc -l < /proc/self/uid_map"}
	expect(0, "42:42\n2\n", view...)
	// A keeper killed outright leaves its socket: the join finds no one
	// there, and the client starts a keeper in the namespace after all.
	for _, pid := range processesWith("incarnate:keeper") {
		if err := syscall.Kill(atoi(t, pid), syscall.SIGKILL); err != nil {
			t.Fatal(err)
		}
	}
	waitFor(t, "the keeper to die", func() bool { return len(processesWith("incarnate:keeper")) == 0 })
	expect(1, "42:42\n2\n", view...)
}

// zombieChildren lists the children of pid that have exited unreaped,
// as "pid (name)".
func zombieChildren(pid int) []string {
	var z []string
	ents, _ := os.ReadDir("/proc")
	for _, e := range ents {
		b, err := os.ReadFile(filepath.Join("/proc", e.Name(), "stat"))
		if err != nil {
			continue
		}
		// pid (comm) state ppid ...: comm may hold spaces, so cut after ')'.
		f := strings.Fields(string(b[strings.LastIndexByte(string(b), ')')+1:]))
		if len(f) > 1 && f[0] == "Z" && f[1] == fmt.Sprint(pid) {
			z = append(z, string(b[:strings.LastIndexByte(string(b), ')')+1]))
		}
	}
	return z
}

func atoi(t *testing.T, s string) int {
	t.Helper()
	n, err := strconv.Atoi(s)
	if err != nil {
		t.Fatal(err)
	}
	return n
}
