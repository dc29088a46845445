package cli

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/incarnate-dev/incarnate/internal/testbase"
)

// changeScript writes one of each thing an upper dir can hold: a new
// file, a copied-up one, a whiteout, an opaque dir, a hard link, a sparse
// file.
const changeScript = `
echo new > /root/a
echo more >> /etc/passwd
rm /etc/os-release
rm -rf /home && mkdir /home && echo only > /home/only
ln /root/a /root/a-link
dd if=/dev/zero of=/root/sparse bs=1 count=1 seek=64M 2>/dev/null
`

func TestCloneRenameReset(t *testing.T) {
	forEachUser(t, func(t *testing.T, h *harness) {
		h.ok("new", "--base", "bb", "--hostname", "same", "s")
		h.ok("run", "s", "--", "sh", "-c", changeScript)
		h.ok("clone", "s", "t")
		upper := func(name string) string { return filepath.Join(h.store, "sessions", name, "upper") }
		if got, want := testbase.ExactDigest(t, upper("t")), testbase.ExactDigest(t, upper("s")); got != want {
			t.Fatalf("clone is not exact:\n got %s\nwant %s", got, want)
		}
		if !strings.Contains(testbase.ExactDigest(t, upper("s")), "etc/os-release mode=20000") {
			t.Fatalf("the test lost its whiteout: %s", testbase.ExactDigest(t, upper("s")))
		}
		view := "cat /root/a /home/only; ls /home; [ -e /etc/os-release ] || echo gone; hostname; stat -c %h /root/a; [ $(du -k /root/sparse | cut -f1) -lt 64 ] && echo holey"
		want := h.ok("run", "s", "--", "sh", "-c", view)
		if want != "new\nonly\nonly\ngone\nsame\n2\nholey\n" {
			t.Fatalf("the session itself shows %q", want)
		}
		if got := h.ok("run", "t", "--", "sh", "-c", view); got != want {
			t.Errorf("the clone shows %q, the original %q", got, want)
		}
		h.ok("rename", "t", "u")
		if out := h.ok("ls"); strings.Contains(out, "\nt ") || !strings.Contains(out, "\nu ") {
			t.Errorf("after rename, ls shows:\n%s", out)
		}
		if got := h.ok("run", "u", "--", "sh", "-c", view); got != want {
			t.Errorf("the renamed clone shows %q", got)
		}
		h.ok("reset", "--yes", "u")
		if got := h.ok("run", "u", "--", "sh", "-c", "cat /etc/os-release; find /root /home -mindepth 1 | wc -l"); got != "ID=incarnate-test\n0\n" {
			t.Errorf("after reset the session shows %q, want the base", got)
		}
		if got := h.ok("run", "s", "--", "sh", "-c", view); got != want {
			t.Errorf("the original changed under its clone's reset: %q", got)
		}
	})
}

func TestInUseIsRefusedUnlessForced(t *testing.T) {
	forEachUser(t, func(t *testing.T, h *harness) {
		h.ok("new", "--base", "bb", "s")
		bg := h.command("run", "s", "--", "sleep", "1000")
		if err := bg.Start(); err != nil {
			t.Fatal(err)
		}
		defer func() { _ = bg.Process.Kill(); _ = bg.Wait() }()
		waitFor(t, "the sleep to run", func() bool { return regexpLine(h.ok("ls"), "s", "1") })
		for _, args := range [][]string{{"rm", "--yes", "s"}, {"reset", "--yes", "s"}, {"rename", "s", "t"}, {"clone", "s", "t"}} {
			_, errOut, status := h.run(args...)
			if status == 0 || !strings.Contains(errOut, "in use") || !strings.Contains(errOut, "--force") {
				t.Errorf("%v on a session in use: status %d, stderr %q", args, status, errOut)
			}
		}
		h.ok("rm", "--yes", "--force", "s")
		_ = bg.Wait()
		if out := h.ok("ls"); !strings.Contains(out, "No sessions yet") {
			t.Errorf("after rm --force: %s", out)
		}
	})
}

// rm renames into trash at once and deletes in the background.
func TestRmDeletesInTheBackground(t *testing.T) {
	h := newHarness(t, users()[0])
	h.ok("new", "--base", "bb", "s")
	h.ok("run", "s", "--", "sh", "-c", "mkdir /many && cd /many && for i in $(seq 500); do echo $i > f$i; done")
	h.ok("rm", "--yes", "s")
	if _, err := os.Stat(filepath.Join(h.store, "sessions", "s")); !os.IsNotExist(err) {
		t.Errorf("the session is still in sessions/: %v", err)
	}
	waitFor(t, "the trash to be emptied", func() bool { return emptyDir(filepath.Join(h.store, "trash")) })
}

// rm, reset and base rm ask on a terminal, and without one refuse unless
// told --yes: nothing is discarded by a command that asked no one.
func TestDestructiveCommandsAsk(t *testing.T) {
	h := newHarness(t, rootUser)
	h.ok("new", "--base", "bb", "s")
	h.ok("run", "s", "--", "touch", "/kept")
	h.ok("base", "import", "spare", h.base) // in use by none: base rm may take it
	for _, args := range [][]string{{"rm", "s"}, {"reset", "s"}, {"base", "rm", "spare"}} {
		if _, stderr, status := h.run(args...); status != 2 || !strings.Contains(stderr, "pass --yes") {
			t.Errorf("%v without a terminal: exit %d, %q; want 2 and a word about --yes", args, status, stderr)
		}
		sc := h.onPty(t, 24, 80, h.command(args...))
		sc.expect("[y/N] ")
		sc.send("n\r")
		if status := sc.exit(); status != 1 || !strings.Contains(sc.text(), "nothing ") {
			t.Errorf("%v answered no: exit %d, screen %q", args, status, sc.text())
		}
	}
	if out := h.ok("run", "s", "--", "ls", "/kept"); out != "/kept\n" {
		t.Fatalf("after three refusals the session shows %q", out)
	}
	sc := h.onPty(t, 24, 80, h.command("rm", "s", "s"))
	sc.expect("Discard s and everything written in it? [y/N] ")
	sc.send("y\r")
	if status := sc.exit(); status != 0 || exists(h, "s") {
		t.Errorf("rm s s answered yes: exit %d, screen %q", status, sc.text())
	}
}

func emptyDir(dir string) bool {
	ents, err := os.ReadDir(dir)
	return err == nil && len(ents) == 0
}

// A SIGKILL at the worst moment of create, clone and rm leaves a store
// that lists only whole sessions, loses nothing of the others, and lets
// the same command succeed when run again.
func TestCrashesLeaveTheStoreWhole(t *testing.T) {
	forEachUser(t, func(t *testing.T, h *harness) {
		h.ok("new", "--base", "bb", "keep")
		h.ok("run", "keep", "--", "sh", "-c", "echo precious > /root/p")
		keep := testbase.ExactDigest(t, filepath.Join(h.store, "sessions", "keep", "upper"))
		steps := []struct {
			fault string
			args  []string
			after func() bool // the state the crash must leave
		}{
			{"session-built", []string{"new", "--base", "bb", "born"}, func() bool { return !exists(h, "born") }},
			{"session-built", []string{"clone", "keep", "twin"}, func() bool { return !exists(h, "twin") }},
			{"trashed", []string{"rm", "--yes", "twin"}, func() bool { return !exists(h, "twin") }},
		}
		for _, st := range steps { // the rerun of clone made the twin rm kills
			cmd := h.command(st.args...)
			cmd.Env = append(cmd.Env, "INCARNATE_FAULT="+st.fault)
			var stderr bytes.Buffer
			cmd.Stderr = &stderr
			err := cmd.Run()
			if ws, ok := cmd.ProcessState.Sys().(syscall.WaitStatus); !ok || !ws.Signaled() || ws.Signal() != syscall.SIGKILL {
				t.Fatalf("%v with fault %s: %v (%s), want death by SIGKILL", st.args, st.fault, err, stderr.String())
			}
			if !st.after() {
				t.Errorf("%v killed at %s left a half-made session in ls:\n%s", st.args, st.fault, h.ok("ls"))
			}
			if st.args[0] != "rm" {
				h.ok(st.args...) // the rerun succeeds
			}
		}
		h.ok("ls") // a start-up: clears tmp/ and resumes the purge
		waitFor(t, "tmp/ and trash/ to be cleared", func() bool {
			return emptyDir(filepath.Join(h.store, "tmp")) && emptyDir(filepath.Join(h.store, "trash"))
		})
		if got := testbase.ExactDigest(t, filepath.Join(h.store, "sessions", "keep", "upper")); got != keep {
			t.Errorf("the untouched session changed")
		}
		if out := h.ok("run", "keep", "--", "cat", "/root/p"); out != "precious\n" {
			t.Errorf("keep holds %q", out)
		}
	})
}

// A reset killed between its steps leaves the upper dir moved away with
// an empty one beside it, or no work dir, or a spare empty upper: the
// next command that enters, resets, copies or commits the session
// finishes the reset instead of failing on it.
func TestHalfResetIsFinished(t *testing.T) {
	h := newHarness(t, rootUser)
	dir := func(name string) string { return filepath.Join(h.store, "sessions", name) }
	states := map[string]func(d string) error{
		"upper moved, empty one not yet in place": func(d string) error {
			if err := os.Rename(filepath.Join(d, "upper"), filepath.Join(h.store, "trash", "gone")); err != nil {
				return err
			}
			return os.Mkdir(filepath.Join(d, "upper.new"), 0o755)
		},
		"work dir not yet made again":         func(d string) error { return os.RemoveAll(filepath.Join(d, "work")) },
		"empty upper made, nothing moved yet": func(d string) error { return os.Mkdir(filepath.Join(d, "upper.new"), 0o755) },
	}
	for what, crash := range states {
		for _, next := range [][]string{{"run", "s", "--", "true"}, {"reset", "--yes", "s"}, {"clone", "s", "c"}, {"commit", "s", "b"}} {
			h.ok("new", "--base", "bb", "s")
			h.ok("run", "s", "--", "touch", "/kept")
			if err := crash(dir("s")); err != nil {
				t.Fatal(err)
			}
			_, stderr, status := h.run(next...)
			// With its upper moved away the session is empty again: the
			// commit is refused for that, not for the half-made reset.
			emptied := what == "upper moved, empty one not yet in place" && next[0] == "commit"
			if emptied && (status != 1 || !strings.Contains(stderr, "no changes to commit")) || !emptied && status != 0 {
				t.Errorf("%s, then %v: exit %d, %s", what, next, status, stderr)
			}
			if out := h.ok("run", "s", "--", "sh", "-c", "ls /kept 2>/dev/null; echo ok"); !strings.HasSuffix(out, "ok\n") {
				t.Errorf("%s, then %v: the session shows %q", what, next, out)
			}
			if _, err := os.Lstat(filepath.Join(dir("s"), "upper.new")); err == nil {
				t.Errorf("%s, then %v: upper.new is still there", what, next)
			}
			h.ok("rm", "--yes", "s")
			h.run("rm", "--yes", "c")
			h.run("base", "rm", "--yes", "b")
		}
	}
}

func exists(h *harness, name string) bool {
	return regexpLineName(h.ok("ls"), name)
}

func regexpLineName(out, name string) bool {
	for _, line := range strings.Split(out, "\n") {
		if f := strings.Fields(line); len(f) > 0 && f[0] == name {
			return true
		}
	}
	return false
}

// Copies that take a while draw a progress line on a terminal, against
// the size ls measured; piped, they print none.
func TestCloneAndCommitShowProgress(t *testing.T) {
	forEachUser(t, func(t *testing.T, h *harness) {
		h.ok("new", "--base", "bb", "s")
		h.ok("run", "s", "--", "dd", "if=/dev/zero", "of=/root/blob", "bs=1M", "count=3")
		h.ok("ls") // measures s
		for _, args := range [][]string{{"clone", "s", "t"}, {"commit", "s", "frozen"}} {
			s := h.onPty(t, 24, 100, h.command(args...))
			if status := s.exit(); status != 0 {
				t.Fatalf("incarnate %s: exit %d; screen:\n%q", strings.Join(args, " "), status, s.text())
			}
			if !strings.Contains(s.text(), "\rcopying s  3.0M / 3.") || !strings.Contains(s.text(), "100%") {
				t.Errorf("incarnate %s on a terminal showed no progress line:\n%q", strings.Join(args, " "), s.text())
			}
		}
		_, stderr, status := h.run("clone", "s", "u")
		if status != 0 || strings.Contains(stderr, "\r") {
			t.Errorf("clone into a pipe: exit %d, stderr %q; want no progress line", status, stderr)
		}
	})
}
