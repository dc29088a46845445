package cli

import (
	"crypto/sha256"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"golang.org/x/sys/unix"
)

// openFuse lets ordinary users open /dev/fuse, as desktop systems ship
// it, for the test; these machines make it 0600. Root only.
func openFuse(t *testing.T) {
	t.Helper()
	var st unix.Stat_t
	if err := unix.Stat("/dev/fuse", &st); err != nil {
		t.Skipf("no /dev/fuse (%v): the kernel has no FUSE, which an ordinary user's host base needs", err)
	}
	if st.Mode&0o006 == 0o006 || os.Geteuid() != 0 {
		return
	}
	t.Logf("test set-up: chmod 0666 /dev/fuse (was %#o), as desktop systems ship it", st.Mode&0o777)
	if err := os.Chmod("/dev/fuse", 0o666); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = os.Chmod("/dev/fuse", os.FileMode(st.Mode&0o777)) })
}

// testSubmount mounts a tmpfs with a file in it below dir, as a separate
// /home or /var disk would be, and unmounts it after the test.
func testSubmount(t *testing.T, dir string) string {
	t.Helper()
	mnt := filepath.Join(dir, "mnt")
	if err := os.Mkdir(mnt, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := unix.Mount("tmpfs", mnt, "tmpfs", 0, "size=8m,mode=0755"); err != nil {
		t.Fatalf("test submount: %v", err)
	}
	t.Cleanup(func() {
		if err := unix.Unmount(mnt, unix.MNT_DETACH); err != nil {
			t.Errorf("unmount the test submount: %v", err)
		}
	})
	if err := os.WriteFile(filepath.Join(mnt, "f"), []byte("on the submount\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	return mnt
}

// testDeb builds a one-file Debian package, so that apt-get needs no
// network.
func testDeb(t *testing.T, dir string) string {
	t.Helper()
	if _, err := exec.LookPath("dpkg-deb"); err != nil {
		t.Skip("no dpkg-deb: the host base's apt test needs a Debian host")
	}
	src := filepath.Join(t.TempDir(), "pkg")
	for _, d := range []string{"DEBIAN", "usr/share/incarnate-hello"} {
		if err := os.MkdirAll(filepath.Join(src, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	control := "Package: incarnate-hello\nVersion: 1.0\nArchitecture: all\nMaintainer: incarnate tests <t@example.invalid>\nDescription: test package\n"
	if err := os.WriteFile(filepath.Join(src, "DEBIAN/control"), []byte(control), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(src, "usr/share/incarnate-hello/greeting"), []byte("hello from a deb\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	deb := filepath.Join(dir, "hello.deb")
	if out, err := exec.Command("dpkg-deb", "--root-owner-group", "-b", src, deb).CombinedOutput(); err != nil {
		t.Fatalf("dpkg-deb: %v\n%s", err, out)
	}
	return deb
}

// The host base, for root and for an ordinary user with and without
// sub-ids: the whole machine, submounts included, writable anywhere as
// root inside, and the host byte for byte as it was.
func TestHostBaseCopyOnWrite(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root: to mount a test submount and to run as an ordinary user")
	}
	openFuse(t)
	forEachUser(t, func(t *testing.T, h *harness) {
		mnt := testSubmount(t, h.dir)
		deb := testDeb(t, h.dir)
		tag := fmt.Sprintf("incarnate-test-%d", os.Getpid())
		etcNew, usrNew := "/etc/"+tag, "/usr/local/share/"+tag
		watched := []string{"/etc/hosts", "/etc/passwd", "/var/lib/dpkg/status"}
		before := map[string]string{}
		for _, f := range watched {
			before[f] = fileDigest(t, f)
		}
		subBefore := treeDigest(t, mnt)
		// A home of the user's own: the kernel's overlay serves it
		// (session/host_linux.go kernelDirs), the FUSE daemon the rest.
		h.home = filepath.Join(h.dir, "home")
		for name, body := range map[string]string{"notes": "mine\n", "old": "old\n", "src/main.c": "int main;\n"} {
			writeOwned(t, h, filepath.Join(h.home, name), body)
		}
		homeBefore := treeDigest(t, h.home)

		h.ok("new", "h")
		script := strings.Join([]string{
			"set -e",
			"cd " + h.home + " && echo more >> notes && rm old && echo new > src/new.c && mkdir build && echo o > build/out && cd /",
			"echo 10.9.8.7 " + tag + " >> /etc/hosts",
			"echo x > " + etcNew,
			"chown 42:42 " + etcNew + " 2>/dev/null || true", // only one id is mapped without sub-ids
			"mkdir -p /usr/local/share && echo y > " + usrNew,
			"echo z > " + h.dir + "/" + tag,
			"echo r > /root/" + tag, // root's home inside, closed to users on the host
			"cat " + mnt + "/f",
			"echo changed >> " + mnt + "/f",
			"echo new > " + mnt + "/g",
			"apt-get install -y -q " + deb + " >/tmp/apt.log 2>&1 || { cat /tmp/apt.log; exit 1; }",
			"cat /usr/share/incarnate-hello/greeting",
			"grep -c " + tag + " /etc/hosts",
		}, "\n")
		out, errOut, status := h.run("run", "h", "--", "/bin/sh", "-c", script)
		if status != 0 {
			t.Fatalf("inside the host session: exit %d\nstdout: %s\nstderr: %s", status, out, errOut)
		}
		if out != "on the submount\nhello from a deb\n1\n" {
			t.Errorf("inside the host session: %q, want the submount's file, the package's and the edited /etc/hosts", out)
		}
		// The host is as it was.
		for _, f := range watched {
			if got := fileDigest(t, f); got != before[f] {
				t.Errorf("host %s changed", f)
			}
		}
		for _, f := range []string{etcNew, usrNew, filepath.Join(h.dir, tag), "/usr/share/incarnate-hello", "/root/" + tag} {
			if _, err := os.Lstat(f); err == nil {
				t.Errorf("host %s exists: the session wrote the host", f)
			}
		}
		if got := treeDigest(t, mnt); got != subBefore {
			t.Errorf("the host's submount changed:\nbefore %s\nafter  %s", subBefore, got)
		}
		if got := treeDigest(t, h.home); got != homeBefore {
			t.Errorf("the host's home changed:\nbefore %s\nafter  %s", homeBefore, got)
		}
		// diff lists what changed, the submount's too.
		diff := h.ok("diff", "h")
		for _, want := range []string{"M /etc/hosts", "A " + etcNew, "A /root/" + tag, "A " + usrNew, "A " + h.dir + "/" + tag,
			"M " + mnt + "/f", "A " + mnt + "/g", "A /usr/share/incarnate-hello/greeting", "M /var/lib/dpkg/status",
			"M " + h.home + "/notes", "D " + h.home + "/old", "A " + h.home + "/src/new.c", "A " + h.home + "/build/out"} {
			if !strings.Contains(diff, want+"\n") {
				t.Errorf("diff lacks %q:\n%s", want, diff)
			}
		}
		checkOwnerKept(t, h, etcNew)
		submountTravels(t, h, mnt)
		// reset drops it all.
		h.ok("reset", "--yes", "h")
		if out := h.ok("diff", "h"); out != "no changes in h\n" {
			t.Errorf("diff after reset: %q", out)
		}
		out = h.ok("run", "h", "--", "/bin/sh", "-c", "cat "+mnt+"/f; ls "+etcNew+" 2>/dev/null || echo gone; grep -c "+tag+" /etc/hosts || true")
		if out != "on the submount\ngone\n0\n" {
			t.Errorf("after reset: %q, want the host's view again", out)
		}
	})
}

// fileDigest is the sha256 of a host file's content and metadata.
// checkOwnerKept checks that the file p, which session h gave uid and
// gid 42, keeps that owner inside, and is stored in the upper dir as
// the host id 42 maps to: itself for root (idmapped layers), the 42nd
// id of the user's sub-id range for a user with one.
func checkOwnerKept(t *testing.T, h *harness, p string) {
	t.Helper()
	if h.u.uid != 0 && !h.u.subIDs {
		return
	}
	if out := h.ok("run", "h", "--", "stat", "-c", "%u:%g", p); out != "42:42\n" {
		t.Errorf("inside, %s is owned by %q, want 42:42", p, out)
	}
	want := uint32(42)
	if h.u.uid != 0 {
		want = subIDFirst + 41
	}
	var st unix.Stat_t
	if err := unix.Lstat(filepath.Join(h.store, "sessions", "h", "upper", p), &st); err != nil || st.Uid != want || st.Gid != want {
		t.Errorf("the upper dir holds %s as %d:%d, %v; want %d", p, st.Uid, st.Gid, err, want)
	}
}

// submountTravels checks that what session h changed on the submount
// mnt goes where the rest of its changes go: into its export, a base
// committed from it, and a clone.
func submountTravels(t *testing.T, h *harness, mnt string) {
	t.Helper()
	tarball := filepath.Join(h.dir, "out", "h.tar")
	writeOwned(t, h, tarball, "") // a file of the user's, which export replaces
	h.ok("export", "h", tarball)
	list, err := exec.Command("tar", "-tf", tarball).Output()
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{strings.TrimPrefix(mnt, "/") + "/f", strings.TrimPrefix(mnt, "/") + "/g"} {
		if !strings.Contains(string(list), want+"\n") {
			t.Errorf("export of h lacks %s:\n%s", want, list)
		}
	}
	h.ok("commit", "h", "hb")
	h.ok("new", "--base", "hb", "on-hb")
	h.ok("clone", "h", "h2")
	for _, s := range []string{"on-hb", "h2"} {
		if out := h.ok("run", s, "--", "cat", mnt+"/f", mnt+"/g"); out != "on the submount\nchanged\nnew\n" {
			t.Errorf("session %s sees the submount's files as %q, want h's changes", s, out)
		}
	}
	h.ok("rm", "--yes", "on-hb", "h2")
}

func fileDigest(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var st unix.Stat_t
	if err := unix.Lstat(path, &st); err != nil {
		t.Fatal(err)
	}
	return fmt.Sprintf("%x %o %d:%d %d", sha256.Sum256(b), st.Mode, st.Uid, st.Gid, st.Mtim.Nano())
}

// run and enter start in the caller's directory when the session has it,
// else in ~ with a notice; --cwd works for both.
func TestWorkingDirectoryFollows(t *testing.T) {
	openFuse(t)
	forEachUser(t, func(t *testing.T, h *harness) {
		work := filepath.Join(h.dir, "project")
		if err := os.Mkdir(work, 0o755); err != nil {
			t.Fatal(err)
		}
		h.ok("new", "h")
		h.ok("new", "--base", "bb", "b")
		inDir := func(args ...string) (string, string) {
			cmd := h.command(args...)
			cmd.Dir = work
			var out, errOut strings.Builder
			cmd.Stdout, cmd.Stderr = &out, &errOut
			if err := cmd.Run(); err != nil {
				t.Fatalf("incarnate %v: %v\n%s", args, err, errOut.String())
			}
			return out.String(), errOut.String()
		}
		if out, _ := inDir("run", "h", "--", "pwd"); out != work+"\n" {
			t.Errorf("run on the host base from %s starts in %q", work, out)
		}
		enter := h.command("enter", "h")
		enter.Dir, enter.Stdin = work, strings.NewReader("pwd\n")
		if out, err := enter.Output(); err != nil || string(out) != work+"\n" {
			t.Errorf("enter on the host base from %s: %q, %v", work, out, err)
		}
		out, errOut := inDir("run", "b", "--", "pwd")
		if out != "/root\n" || !strings.Contains(errOut, work+" is not in session b: starting in /root") {
			t.Errorf("run on a base without %s: stdout %q, stderr %q; want /root and a notice", work, out, errOut)
		}
		enter = h.command("enter", "b")
		enter.Dir, enter.Stdin = work, strings.NewReader("pwd\n")
		var enterErr strings.Builder
		enter.Stderr = &enterErr
		if out, err := enter.Output(); err != nil || string(out) != "/root\n" || !strings.Contains(enterErr.String(), work+" is not in session b: starting in /root") {
			t.Errorf("enter on a base without %s: %q, %v, stderr %q; want /root and a notice", work, out, err, enterErr.String())
		}
		if out, _ := inDir("run", "--cwd", "/etc", "h", "--", "pwd"); out != "/etc\n" {
			t.Errorf("run --cwd /etc: %q", out)
		}
		enter = h.command("enter", "--cwd", "/etc", "b")
		enter.Stdin = strings.NewReader("pwd\n")
		if out, err := enter.Output(); err != nil || string(out) != "/etc\n" {
			t.Errorf("enter --cwd /etc: %q, %v", out, err)
		}
	})
}

// The interface enters a session in the directory it was started in.
func TestInterfaceEntersInItsDirectory(t *testing.T) {
	openFuse(t)
	forEachUser(t, func(t *testing.T, h *harness) {
		work := filepath.Join(h.dir, "project")
		if err := os.Mkdir(work, 0o755); err != nil {
			t.Fatal(err)
		}
		h.ok("new", "h")
		s := startInTmuxIn(t, h, work, 100, 30)
		s.waitText("›h")
		s.keys("Enter")
		s.waitText("[h]") // the shell's prompt
		s.typeText("echo at-$(pwd)-end")
		s.keys("Enter")
		s.waitText("at-" + work + "-end")
		s.typeText("exit")
		s.keys("Enter")
		s.waitText("left h")
		// A base without that directory: the shell starts in ~, saying so.
		h.ok("new", "--base", "bb", "b")
		s.keys("/")
		s.typeText("b")
		s.keys("Enter")
		s.waitText("1 of 2 sessions match")
		s.keys("Enter")
		s.waitText(work + " is not in session b: starting in /root")
		s.typeText("echo at-$(pwd)-end")
		s.keys("Enter")
		s.waitText("at-/root-end")
		s.typeText("exit")
		s.keys("Enter")
		s.waitText("left b")
	})
}

// The store is hidden inside a host-base session where the host resolves
// its path: a session that replaces, in its view, a symlink on the way to
// the store does not see the store at its real path on the next start.
func TestAttackHiddenStoreBehindSymlink(t *testing.T) {
	openFuse(t)
	forEachUser(t, func(t *testing.T, h *harness) {
		real := filepath.Join(h.dir, "real")
		if err := os.Rename(h.store, filepath.Join(h.dir, "store-real")); err != nil {
			t.Fatal(err)
		}
		if err := os.Mkdir(real, 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.Rename(filepath.Join(h.dir, "store-real"), filepath.Join(real, "store")); err != nil {
			t.Fatal(err)
		}
		link := filepath.Join(h.dir, "link")
		if err := os.Symlink(real, link); err != nil {
			t.Fatal(err)
		}
		h.store = filepath.Join(link, "store")
		h.ok("new", "s1")
		h.ok("new", "s2")
		h.ok("run", "s2", "--", "sh", "-c", "echo secret-of-s2 > /etc/s2-secret")
		h.ok("run", "s1", "--", "sh", "-c", "rm "+link+" && mkdir -p "+h.store)
		out, _, _ := h.run("run", "s1", "--", "sh", "-c", "cat "+real+"/store/sessions/s2/upper/etc/s2-secret; ls "+real+"/store")
		if strings.Contains(out, "secret-of-s2") || strings.Contains(out, "sessions") {
			t.Errorf("s1 reads the store at its real path: %q", out)
		}
	})
}

// commit drops the mount points incarnate made from the layer it copies,
// never through a symlink the session left there: one to a host directory
// with a file of the same name and mark must leave that file alone.
func TestAttackCommitDropThroughSymlink(t *testing.T) {
	openFuse(t)
	forEachUser(t, func(t *testing.T, h *harness) {
		decoy := filepath.Join(h.dir, "decoy")
		victim := filepath.Join(decoy, "apt.conf.d", "00incarnate-no-apt-user")
		if err := os.MkdirAll(filepath.Dir(victim), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(victim, nil, 0o644); err != nil {
			t.Fatal(err)
		}
		if err := unix.Setxattr(victim, "user.incarnate.mountpoint", []byte("1"), 0); err != nil {
			t.Skipf("no user xattrs here: %v", err)
		}
		h.ok("new", "s")
		if _, errOut, status := h.run("run", "s", "--", "sh", "-c", "rm -rf /etc/apt && ln -s "+decoy+" /etc/apt"); status != 0 {
			if h.u.uid != 0 && !h.u.subIDs && strings.Contains(errOut, "busy") {
				t.Skip("without sub-ids the session's apt.conf.d holds a bind, which no session can replace")
			}
			// fuse-overlayfs 1.10 now and then says ENOENT to a symlink it
			// made (see TestApply): what counts is the link.
			if out, _, _ := h.run("run", "s", "--", "readlink", "/etc/apt"); out != decoy+"\n" {
				t.Fatalf("replacing /etc/apt: %s", errOut)
			}
		}
		h.ok("commit", "s", "sb")
		if _, err := os.Lstat(victim); err != nil {
			t.Errorf("commit removed the host's %s: %v", victim, err)
		}
	})
}

// A session cannot hide a change from diff and export by putting the mark
// of a stub on a file of its own.
func TestAttackStubMarkHidesNothing(t *testing.T) {
	openFuse(t)
	forEachUser(t, func(t *testing.T, h *harness) {
		if _, err := exec.LookPath("python3"); err != nil {
			t.Skip("needs python3 on the host, to set an xattr from inside")
		}
		h.ok("new", "s")
		h.ok("run", "s", "--", "sh", "-c", `touch -r /etc/issue /tmp/ref && : > /etc/issue && touch -r /tmp/ref /etc/issue &&
python3 -c 'import os; os.setxattr("/etc/issue", "user.incarnate.stub", b"1")'`)
		if diff := h.ok("diff", "s"); !strings.Contains(diff, "M /etc/issue\n") {
			t.Errorf("the emptied /etc/issue is not in the diff:\n%s", diff)
		}
	})
}

// deepTree makes, below dir, directories three times PATH_MAX deep with a
// file at the bottom, each step relative to the one above (as a session
// can with mkdir and chdir), owned like dir. It returns the depth.
func deepTree(t *testing.T, dir string) int {
	t.Helper()
	var owner unix.Stat_t
	if err := unix.Stat(dir, &owner); err != nil {
		t.Fatal(err)
	}
	name := strings.Repeat("d", 200)
	depth := 3*unix.PathMax/(len(name)+1) + 1
	fd, err := unix.Open(dir, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i < depth; i++ {
		if err := unix.Mkdirat(fd, name, 0o755); err != nil {
			t.Fatal(err)
		}
		_ = unix.Fchownat(fd, name, int(owner.Uid), int(owner.Gid), unix.AT_SYMLINK_NOFOLLOW)
		next, err := unix.Openat(fd, name, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
		unix.Close(fd)
		if err != nil {
			t.Fatal(err)
		}
		fd = next
	}
	f, err := unix.Openat(fd, "leaf", unix.O_CREAT|unix.O_WRONLY|unix.O_CLOEXEC, 0o644)
	if err != nil {
		t.Fatal(err)
	}
	_ = unix.Fchown(f, int(owner.Uid), int(owner.Gid))
	unix.Close(f)
	unix.Close(fd)
	return depth
}

// A session's tree deeper than PATH_MAX goes through ls, diff, clone,
// commit, export, reset and rm.
func TestDeepTree(t *testing.T) {
	forEachUser(t, func(t *testing.T, h *harness) {
		h.ok("new", "--base", "bb", "deep")
		upper := filepath.Join(h.store, "sessions", "deep", "upper")
		depth := deepTree(t, upper)
		var rows []lsRow
		if err := json.Unmarshal([]byte(h.ok("ls", "--json")), &rows); err != nil || len(rows) != 1 || rows[0].Changes < depth {
			t.Errorf("ls --json of a deep session: %+v, %v; want %d changes and more", rows, err, depth)
		}
		if diff := h.ok("diff", "deep"); strings.Count(diff, "\nA /") < depth-1 || !strings.Contains(diff, "/leaf\n") {
			t.Errorf("diff of a deep session lists %d paths, want %d and the leaf", strings.Count(diff, "\n"), depth+1)
		}
		h.ok("clone", "deep", "deep2")
		if got := treeDepth(t, filepath.Join(h.store, "sessions", "deep2", "upper")); got != depth+1 {
			t.Errorf("the clone is %d deep, want %d", got, depth+1)
		}
		h.ok("commit", "deep", "deepbase")
		h.ok("new", "--base", "deepbase", "on-deep")
		tarball := h.ok("export", "deep", "-")
		if names := tarNames(t, []byte(tarball)); len(names) < depth || !strings.HasSuffix(names[len(names)-1], "/leaf") {
			t.Errorf("the export holds %d names, want %d and the leaf last", len(names), depth+1)
		}
		h.ok("rm", "--yes", "deep2")
		h.ok("rm", "--yes", "on-deep")
		h.ok("base", "rm", "--yes", "deepbase")
		h.ok("reset", "--yes", "deep")
		h.ok("rm", "--yes", "deep")
		waitFor(t, "the purge of a deep tree", func() bool { return emptyDir(filepath.Join(h.store, "trash")) })
		if out := h.ok("ls"); strings.Contains(out, "deep") {
			t.Errorf("ls after rm: %q", out)
		}
	})
}

// treeDepth is how many directories deep dir's first chain goes, plus one
// for a file at its end.
func treeDepth(t *testing.T, dir string) int {
	t.Helper()
	fd, err := unix.Open(dir, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	depth := 0
	for {
		f := os.NewFile(uintptr(fd), "dir")
		names, _ := f.Readdirnames(1)
		if len(names) == 0 {
			f.Close()
			return depth
		}
		depth++
		next, err := unix.Openat(fd, names[0], unix.O_RDONLY|unix.O_DIRECTORY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
		f.Close()
		if err != nil {
			return depth // the file at the end
		}
		fd = next
	}
}

// A clone of a host-base session is an exact copy: what incarnate made
// in it to stand in for unreadable host files is no change in the clone
// either.
func TestCloneOfHostSessionIsExact(t *testing.T) {
	openFuse(t)
	forEachUser(t, func(t *testing.T, h *harness) {
		h.ok("new", "h")
		h.ok("run", "h", "--", "true")
		h.ok("clone", "h", "h2")
		for _, name := range []string{"h", "h2"} {
			if out := h.ok("diff", name); out != "no changes in "+name+"\n" {
				t.Errorf("diff %s: %q", name, out)
			}
		}
	})
}

// A submount the kernel's overlay refuses (ramfs cannot be idmapped) is
// not hidden in silence: the session shows the directory beneath it, and
// says so when it starts.
func TestRefusedSubmountIsTold(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root, to mount the test's ramfs")
	}
	h := newHarness(t, rootUser)
	ram := filepath.Join(h.dir, "ram")
	if err := os.Mkdir(ram, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := unix.Mount("none", ram, "ramfs", 0, ""); err != nil {
		t.Skipf("no ramfs to mount here: %v", err)
	}
	t.Cleanup(func() { _ = unix.Unmount(ram, unix.MNT_DETACH) })
	h.ok("new", "h")
	_, errOut, _ := h.run("run", "h", "--", "true")
	if want := "session h: " + ram + " shows the directory beneath it, not the file system mounted there"; strings.Count(errOut, want) != 1 {
		t.Errorf("a session whose submount was refused says %q; want once %q", errOut, want)
	}
}

// The host base shows the machine's files, never its live trees: /run
// (every service's sockets) is the session's own tmpfs, /proc shows the
// session's processes only, and /dev holds no host disk.
func TestHostBaseKeepsItsOwnTrees(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root, to leave a marker in the host's /run")
	}
	openFuse(t)
	marker := fmt.Sprintf("/run/incarnate-test-%d", os.Getpid())
	if err := os.WriteFile(marker, []byte("host\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.Remove(marker) })
	forEachUser(t, func(t *testing.T, h *harness) {
		h.ok("new", "h")
		script := "ls " + marker + " 2>/dev/null || echo no-marker; echo s > /run/inside && cat /run/inside; " +
			"ls /proc | grep -c '^[0-9]'; ls /dev | grep -cE '^(vd|sd|nvme|xvd)' || true"
		out := h.ok("run", "h", "--", "sh", "-c", script)
		lines := strings.Split(strings.TrimSpace(out), "\n")
		if len(lines) != 4 || lines[0] != "no-marker" || lines[1] != "s" || lines[3] != "0" {
			t.Fatalf("inside the host base: %q; want no host /run, a writable own /run, no host disks", out)
		}
		if n, err := strconv.Atoi(lines[2]); err != nil || n > 10 {
			t.Errorf("the session's /proc lists %s processes: the host's show", lines[2])
		}
		if _, err := os.Stat("/run/inside"); err == nil {
			os.Remove("/run/inside")
			t.Error("the session's /run/inside reached the host's /run")
		}
	})
}
