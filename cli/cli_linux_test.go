package cli

import (
	"bufio"
	"bytes"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/incarnate-dev/incarnate/internal/testbase"
	"github.com/incarnate-dev/incarnate/sandbox"
)

// The test binary doubles as incarnate: with INCARNATE_TEST_CLI set it is
// the command line, and re-executed as a stage it is the sandbox.
func TestMain(m *testing.M) {
	if sandbox.IsStage() {
		sandbox.RunStage()
	}
	if os.Getenv("INCARNATE_TEST_CLI") == "1" {
		os.Exit(Main(os.Args[1:], os.Stdin, os.Stdout, os.Stderr))
	}
	code := testbase.RunNoLeaks(m)
	removeRelease()
	os.Exit(code)
}

// A user the CLI runs as: root, and an unprivileged uid, with its sub-id
// ranges mapped (subIDUser) or, as by default in the tests, without.
type user struct {
	name     string
	uid, gid int
	subIDs   bool
}

var rootUser = user{"root", 0, 0, false}

func users() []user {
	if os.Geteuid() != 0 {
		return []user{{"unprivileged", os.Geteuid(), os.Getegid(), false}}
	}
	return []user{rootUser, {"unprivileged", 65534, 65534, false}, subIDUser}
}

// forEachUser runs fn as root and as an unprivileged uid, without and
// with sub-ids (the latter two when the test is root), each with a fresh
// store and a busybox base "bb".
func forEachUser(t *testing.T, fn func(t *testing.T, h *harness)) {
	for _, u := range users() {
		t.Run(u.name, func(t *testing.T) { fn(t, newHarness(t, u)) })
	}
}

type harness struct {
	t     *testing.T
	u     user
	bin   string
	dir   string // shared with the user, holds the store and the base source
	store string
	base  string
	path  string // searched before /usr/bin and /bin, when set
	home  string // $HOME, when not dir
	// linger is $INCARNATE_LINGER, when not 0.
	linger string
}

func newHarness(t *testing.T, u user) *harness {
	t.Helper()
	if u.uid == 0 && os.Geteuid() != 0 {
		// Run by an ordinary user (`make test` as yourself): the tests
		// that would run as root run as you; those that need root for
		// what they check skip, saying so (needRoot).
		u = user{"unprivileged", os.Geteuid(), os.Getegid(), false}
	}
	dir := testbase.SharedDir(t)
	h := &harness{t: t, u: u, dir: dir, store: filepath.Join(dir, "store"), bin: filepath.Join(dir, "incarnate")}
	if u.subIDs {
		giveSubIDs(t)
	}
	self, err := os.ReadFile("/proc/self/exe")
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(h.bin, self, 0o755); err != nil {
		t.Fatal(err)
	}
	h.base = testbase.Busybox(t, filepath.Join(dir, "src"))
	if err := os.Mkdir(h.store, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.Chown(h.store, u.uid, u.gid); err != nil {
		t.Fatal(err)
	}
	h.ok("base", "import", "bb", h.base)
	return h
}

// env is the environment incarnate runs in under the harness.
func (h *harness) env() []string {
	path := "/usr/bin:/bin"
	if h.path != "" {
		path = h.path + ":" + path
	}
	home := h.dir
	if h.home != "" {
		home = h.home
	}
	// Keepers go as soon as nothing runs, as the tests of what follows a
	// keeper's end expect; the tests of lingering set h.linger.
	linger := "0"
	if h.linger != "" {
		linger = h.linger
	}
	env := []string{"INCARNATE_TEST_CLI=1", "INCARNATE_ROOT=" + h.store, "PATH=" + path, "HOME=" + home, "INCARNATE_LINGER=" + linger}
	if !h.u.subIDs {
		env = append(env, sandbox.NoSubIDsEnv+"=0")
	}
	return env
}

func (h *harness) command(args ...string) *exec.Cmd {
	cmd := exec.Command(h.bin, args...)
	cmd.Env = h.env()
	cmd.Dir = h.dir
	if h.u.uid != os.Geteuid() {
		cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: uint32(h.u.uid), Gid: uint32(h.u.gid)}}
	}
	return cmd
}

// run runs incarnate and returns its stdout, stderr and exit status.
func (h *harness) run(args ...string) (string, string, int) {
	h.t.Helper()
	var stdout, stderr bytes.Buffer
	cmd := h.command(args...)
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	var ee *exec.ExitError
	if err != nil && !errors.As(err, &ee) {
		h.t.Fatalf("incarnate %v: %v", args, err)
	}
	return stdout.String(), stderr.String(), cmd.ProcessState.ExitCode()
}

// ok runs incarnate and fails the test unless it exits 0.
func (h *harness) ok(args ...string) string {
	h.t.Helper()
	out, errOut, status := h.run(args...)
	if status != 0 {
		h.t.Fatalf("incarnate %s: exit %d\nstdout: %s\nstderr: %s", strings.Join(args, " "), status, out, errOut)
	}
	return out
}

func TestRunInsideASession(t *testing.T) {
	forEachUser(t, func(t *testing.T, h *harness) {
		secret := filepath.Join(h.dir, "host-secret")
		if err := os.WriteFile(secret, []byte("s3cret"), 0o644); err != nil {
			t.Fatal(err)
		}
		h.ok("new", "--base", "bb", "dev-1")
		out := h.ok("run", "--cwd", "/tmp", "--umask", "027", "dev-1", "--", "sh", "-c", `
read pid comm state ppid pgrp sid rest < /proc/self/stat
[ "$pid" = "$sid" ] && echo leader=yes
grep NoNewPrivs /proc/self/status | tr -d '\t '
echo umask=$(umask) cwd=$(pwd) host=$(hostname) pid1=$(cat /proc/1/comm)
echo procs=$(ls /proc | grep -c '^[0-9]')
cat `+secret+` 2>/dev/null || echo secret=unreadable
echo session=$INCARNATE_SESSION`)
		for _, want := range []string{
			"leader=yes", "NoNewPrivs:1", "umask=0027 cwd=/tmp host=dev-1 pid1=incarnate",
			"secret=unreadable", "session=dev-1",
		} {
			if !strings.Contains(out, want+"\n") {
				t.Errorf("want line %q inside the session, got:\n%s", want, out)
			}
		}
		// Only the session's own processes (the keeper, its spawner, sh, a
		// subshell, ls, grep, some already gone), not the host's hundreds.
		if !strings.Contains(out, "procs=6\n") && !strings.Contains(out, "procs=5\n") && !strings.Contains(out, "procs=4\n") {
			t.Errorf("the session sees processes that are not its own:\n%s", out)
		}
	})
}

func TestWritesPersistInTheSessionOnly(t *testing.T) {
	forEachUser(t, func(t *testing.T, h *harness) {
		layer := onlyLayer(t, h)
		before := treeDigest(t, layer)
		h.ok("new", "--base", "bb", "one")
		h.ok("new", "--base", "bb", "two")
		h.ok("run", "one", "--", "sh", "-c", "echo kept > /root/note && rm /etc/os-release")
		if b, err := os.ReadFile(filepath.Join(h.store, "sessions", "one", "upper", "root", "note")); err != nil || string(b) != "kept\n" {
			t.Errorf("upper dir of one: root/note = %q, %v", b, err)
		}
		if out := h.ok("run", "one", "--", "sh", "-c", "cat /root/note; ls /etc"); out != "kept\ngroup\nhosts\npasswd\nresolv.conf\n" {
			t.Errorf("the next run of one sees %q, want the note and no os-release", out)
		}
		out, _, status := h.run("run", "two", "--", "sh", "-c", "cat /root/note; cat /etc/os-release")
		if status != 0 || strings.Contains(out, "kept") || !strings.Contains(out, "ID=incarnate-test") {
			t.Errorf("session two sees one's changes: status %d, output %q", status, out)
		}
		if after := treeDigest(t, layer); after != before {
			t.Errorf("the base layer changed:\nbefore %s\nafter  %s", before, after)
		}
	})
}

func onlyLayer(t *testing.T, h *harness) string {
	ents, err := os.ReadDir(filepath.Join(h.store, "layers"))
	if err != nil || len(ents) != 1 {
		t.Fatalf("layers: %v, %v; want exactly one", ents, err)
	}
	return filepath.Join(h.store, "layers", ents[0].Name())
}

// treeDigest hashes every path, mode, owner, link target and content.
func treeDigest(t *testing.T, root string) string {
	t.Helper()
	sum := sha256.New()
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		fi, err := os.Lstat(p)
		if err != nil {
			return err
		}
		st := fi.Sys().(*syscall.Stat_t)
		fmt.Fprintf(sum, "%s %v %d %d %d\n", p, fi.Mode(), st.Uid, st.Gid, fi.ModTime().UnixNano())
		switch {
		case fi.Mode()&fs.ModeSymlink != 0:
			target, _ := os.Readlink(p)
			io.WriteString(sum, target)
		case fi.Mode().IsRegular():
			f, err := os.Open(p)
			if err != nil {
				return err
			}
			defer f.Close()
			io.Copy(sum, f)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return fmt.Sprintf("%x", sum.Sum(nil))
}

func TestFailingOpNamesItAndExitsWithItsStatus(t *testing.T) {
	forEachUser(t, func(t *testing.T, h *harness) {
		h.ok("new", "--base", "bb", "s")
		_, errOut, status := h.run("run", "--cwd", "/no/such/dir", "s", "--", "true")
		if status != sandbox.StatusChdir {
			t.Errorf("exit status %d, want %d (chdir)", status, sandbox.StatusChdir)
		}
		for _, want := range []string{"chdir", `"/no/such/dir"`, "no such file or directory"} {
			if !strings.Contains(errOut, want) {
				t.Errorf("stderr %q does not name %s", errOut, want)
			}
		}
		if _, _, status := h.run("run", "s", "--", "sh", "-c", "exit 7"); status != 7 {
			t.Errorf("exit status of the command: got %d, want 7", status)
		}
		if _, _, status := h.run("run", "s", "--", "no-such-command"); status != 127 {
			t.Errorf("missing command: got %d, want 127", status)
		}
	})
}

func TestBadNamesTouchNothing(t *testing.T) {
	h := newHarness(t, users()[0])
	bad := []string{"", ".", "..", "../x", "a/b", "a,b", "a:b", "-rf", "nul\x00byte", "new\nline",
		strings.Repeat("x", 300), "ünïcödé", "host/../../etc"}
	before := treeDigest(t, h.dir)
	for _, name := range bad {
		for _, args := range [][]string{{"new", "--", name}, {"rm", "--yes", "--", name}, {"run", "--", name, "true"}, {"base", "import", "--", name, h.base}} {
			if strings.ContainsRune(name, 0) {
				// An argv cannot carry a NUL; the API's own tests cover it.
				continue
			}
			_, errOut, status := h.run(args...)
			if status == 0 || !strings.Contains(errOut, "name") {
				t.Errorf("incarnate %q: status %d, stderr %q; want a refusal that explains names", args, status, errOut)
			}
		}
	}
	if after := treeDigest(t, h.dir); after != before {
		t.Errorf("bad names changed the store or its surroundings")
	}
}

// Killing incarnate itself must take the sandbox down with it: no
// process and no mount outlive it.
func TestKilledClientLeavesNothing(t *testing.T) {
	forEachUser(t, func(t *testing.T, h *harness) {
		h.ok("new", "--base", "bb", "s")
		marker := fmt.Sprintf("%d", 100000+time.Now().UnixNano()%100000)
		cmd := h.command("run", "s", "--", "sh", "-c", "echo ready; exec sleep "+marker)
		stdout, err := cmd.StdoutPipe()
		if err != nil {
			t.Fatal(err)
		}
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		line, _ := bufio.NewReader(stdout).ReadString('\n')
		if line != "ready\n" {
			t.Fatalf("sandbox did not start: %q", line)
		}
		// "ready" comes just before the exec, so the sleep may not be there yet.
		waitFor(t, "the sandboxed sleep to start", func() bool { return len(processesWith("sleep\x00"+marker)) == 1 })
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
		waitFor(t, "the sandboxed sleep to die", func() bool { return len(processesWith("sleep\x00"+marker)) == 0 })
	})
}

// processesWith lists host pids whose command line contains s.
func processesWith(s string) []string {
	var pids []string
	ents, _ := os.ReadDir("/proc")
	for _, e := range ents {
		b, err := os.ReadFile(filepath.Join("/proc", e.Name(), "cmdline"))
		if err == nil && strings.Contains(string(b), s) {
			pids = append(pids, e.Name())
		}
	}
	return pids
}

// waitFor polls cond until it holds, failing after a generous bound; the
// bound is a safety net, not a measurement.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(10 * time.Millisecond) {
		if cond() {
			return
		}
	}
	t.Fatalf("timed out waiting for %s", what)
}

// The host base: as root a session sees the host's files but not the
// store; as an ordinary user it is refused up front with the way out.
func TestHostBase(t *testing.T) {
	openFuse(t)
	forEachUser(t, func(t *testing.T, h *harness) {
		h.ok("new", "h")
		out := h.ok("run", "h", "--", "/bin/sh", "-c", "cat /etc/os-release >/dev/null && echo host-ok; ls -A "+h.store+" | wc -l")
		if out != "host-ok\n0\n" {
			t.Errorf("inside a host session: %q, want the host's files and an empty, hidden store", out)
		}
	})
}
