package sandbox

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// cgChild selects what a re-executed test binary does, before TestMain:
//
//	enter   enter the session cgroup whose directory fds are 3..3+N-1
//	        (N in cgChildFds), then exec os.Args[1:]
//	alloc   enter likewise, then allocate and touch cgAllocMiB MiB
//	keeper  what a keeper does: make a session cgroup, enter it, start a
//	        sleep, chroot(os.Args[1]) so that /sys/fs/cgroup is out of
//	        reach, Close, report, and wait for stdin to close
//	nodeleg try NewSessionCgroup and CgroupSupport, print what they said
const (
	cgChild    = "INCARNATE_CGROUP_TEST"
	cgChildFds = "INCARNATE_CGROUP_TEST_FDS"
	cgAllocMiB = 256
)

func init() {
	switch os.Getenv(cgChild) {
	case "":
		return
	case "enter":
		cgChildEnter()
		err := syscall.Exec(os.Args[1], os.Args[1:], os.Environ())
		fmt.Fprintln(os.Stderr, "exec:", err)
	case "alloc":
		cgChildEnter()
		b := make([]byte, cgAllocMiB<<20)
		for i := 0; i < len(b); i += 4096 {
			b[i] = 1
		}
		fmt.Println("survived", len(b)>>20, "MiB")
		os.Exit(0)
	case "keeper":
		cgChildKeeper()
		os.Exit(0)
	case "nodeleg":
		_, err := NewSessionCgroup(fmt.Sprintf("nodeleg%d", os.Getpid()), CgroupLimits{})
		fmt.Printf("new: %v: %v\n", errors.Is(err, ErrNoCgroupDelegation), err)
		mode, err := CgroupSupport()
		fmt.Printf("support: %v: %q %v\n", errors.Is(err, ErrNoCgroupDelegation), mode, err)
		os.Exit(0)
	}
	os.Exit(3)
}

// cgChildEnter enters the cgroup the parent handed down as fds, the way
// the keeper enters the one it made.
func cgChildEnter() {
	n, _ := strconv.Atoi(os.Getenv(cgChildFds))
	c := &SessionCgroup{}
	for i := range n {
		c.dirs = append(c.dirs, &cgroupDir{dir: os.NewFile(uintptr(3+i), "cgroup"), shown: "fd " + strconv.Itoa(3+i)})
	}
	if err := c.Enter(); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(4)
	}
	for _, d := range c.dirs {
		d.dir.Close()
	}
}

func cgChildKeeper() {
	c, err := NewSessionCgroup(os.Getenv(cgChildFds), CgroupLimits{})
	if err == nil {
		err = c.Enter()
	}
	if err != nil {
		fmt.Println("setup:", err)
		return
	}
	sleep := exec.Command("sleep", "1000")
	if err := sleep.Start(); err != nil {
		fmt.Println("sleep:", err)
		return
	}
	fmt.Println(sleep.Process.Pid)
	if err := unix.Chroot(os.Args[1]); err != nil {
		fmt.Println("chroot:", err)
		return
	}
	err = c.Close()
	if err != nil {
		sleep.Process.Kill()
	}
	fmt.Printf("closed: %v, sleep: %v\n", err, sleep.Wait())
	io.Copy(io.Discard, os.Stdin)
}

var cgSeq atomic.Int32

// newTestCgroup makes a session cgroup with a name of this test run's own,
// removed at the end of the test.
func newTestCgroup(t *testing.T, lim CgroupLimits) *SessionCgroup {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root: these tests make cgroups below the test's own, which only root may do without a delegated cgroup v2")
	}
	if _, err := CgroupSupport(); err != nil {
		t.Skipf("no session cgroups here: %v", err)
	}
	c, err := NewSessionCgroup(fmt.Sprintf("test%d-%d", os.Getpid(), cgSeq.Add(1)), lim)
	if err != nil {
		t.Fatal(err)
	}
	var shown []string
	for _, d := range c.dirs {
		shown = append(shown, d.shown)
	}
	t.Cleanup(func() {
		if err := c.Close(); err != nil {
			t.Error(err)
		}
		forceRemove(t, shown)
	})
	return c
}

// forceRemove is the test's own safety net, by path, for when Close
// failed: it kills what is in the cgroups and removes them.
func forceRemove(t *testing.T, dirs []string) {
	for _, dir := range dirs {
		if _, err := os.Stat(dir); err != nil {
			continue
		}
		t.Errorf("%s is left behind; removing it by path", dir)
		var tree []string
		filepath.WalkDir(dir, func(p string, e os.DirEntry, err error) error {
			if err == nil && e.IsDir() {
				tree = append(tree, p)
			}
			return nil
		})
		for i := len(tree) - 1; i >= 0; i-- {
			for range 100 {
				b, _ := os.ReadFile(filepath.Join(tree[i], "cgroup.procs"))
				for f := range strings.FieldsSeq(string(b)) {
					if pid, _ := strconv.Atoi(f); pid > 0 {
						syscall.Kill(pid, syscall.SIGKILL)
					}
				}
				if syscall.Rmdir(tree[i]) != syscall.EBUSY {
					break
				}
				time.Sleep(10 * time.Millisecond)
			}
		}
	}
}

// inside is a process started in a session cgroup.
type inside struct {
	cmd *exec.Cmd
	out *bufio.Reader // its stdout, to read up to a line it prints when ready
}

// startInside starts a re-executed test binary that enters c and runs
// argv; mode is "enter" or "alloc".
func startInside(t *testing.T, c *SessionCgroup, mode string, argv ...string) *inside {
	t.Helper()
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(exe, argv...)
	cmd.Env = append(os.Environ(), cgChild+"="+mode, cgChildFds+"="+strconv.Itoa(len(c.dirs)))
	cmd.Stdout, cmd.Stderr = w, w
	for _, d := range c.dirs {
		cmd.ExtraFiles = append(cmd.ExtraFiles, d.dir)
	}
	err = cmd.Start()
	w.Close()
	if err != nil {
		r.Close()
		t.Fatal(err)
	}
	t.Cleanup(func() {
		cmd.Process.Kill()
		cmd.Wait()
		r.Close()
	})
	return &inside{cmd: cmd, out: bufio.NewReader(r)}
}

// line reads the next line the process printed.
func (p *inside) line(t *testing.T) string {
	t.Helper()
	l, err := p.out.ReadString('\n')
	if err != nil {
		t.Fatalf("reading the child's output: %v (got %q)", err, l)
	}
	return strings.TrimSuffix(l, "\n")
}

// rest reads everything up to EOF.
func (p *inside) rest(t *testing.T) string {
	t.Helper()
	b, err := io.ReadAll(p.out)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// cgroupLine finds the path /proc/PID/cgroup text gives for the hierarchy
// of kind.
func cgroupLine(text, kind string) string {
	for line := range strings.Lines(text) {
		f := strings.SplitN(strings.TrimSpace(line), ":", 3)
		if len(f) != 3 {
			continue
		}
		if (kind == cgV2 || kind == cgUnified) && f[0] == "0" && f[1] == "" {
			return f[2]
		}
		for ctl := range strings.SplitSeq(f[1], ",") {
			if ctl == kind {
				return f[2]
			}
		}
	}
	return ""
}

// procState is the state letter of /proc/pid/stat, "" once gone.
func procState(pid int) string {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return ""
	}
	_, after, _ := strings.Cut(string(b), ") ")
	return after[:1]
}

func TestCgroupParseSize(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want int64
	}{
		{"100000", 100000},
		{"512M", 512 << 20},
		{"512m", 512 << 20},
		{"2G", 2 << 30},
		{"1.5G", 3 << 29},
		{"64MiB", 64 << 20},
		{"64MB", 64 << 20},
		{"4k", 4096},
		{"1T", 1 << 40},
		{"1000B", 1000},
		{" 8M ", 8 << 20},
	} {
		got, err := ParseSize(tc.in)
		if err != nil || got != tc.want {
			t.Errorf("ParseSize(%q) = %d, %v; want %d", tc.in, got, err, tc.want)
		}
	}
	for _, in := range []string{"", "M", "0", "-1G", "1.5", "abc", "1e3M", "0x10M", "infG", "NaNM", "1Q", "9999999999T", "0.0000001K"} {
		if got, err := ParseSize(in); err == nil {
			t.Errorf("ParseSize(%q) = %d, want an error", in, got)
		} else if !strings.Contains(err.Error(), "512M") {
			t.Errorf("ParseSize(%q): %v; want the error to say what is allowed", in, err)
		}
	}
	for _, n := range []int64{1, 1000, 4096, 64 << 20, 3 << 29, 1 << 40} {
		if got, err := ParseSize(FormatSize(n)); err != nil || got != n {
			t.Errorf("ParseSize(FormatSize(%d) = %q) = %d, %v", n, FormatSize(n), got, err)
		}
	}
}

// A process that enters sees the session cgroup in every hierarchy used,
// and the test process, which did not enter, stays where it was.
func TestCgroupEnter(t *testing.T) {
	c := newTestCgroup(t, CgroupLimits{Memory: 64 << 20})
	p := startInside(t, c, "enter", "/bin/sh", "-c", "cat /proc/self/cgroup")
	got := p.rest(t)
	if err := p.cmd.Wait(); err != nil {
		t.Fatalf("child: %v\n%s", err, got)
	}
	own, err := os.ReadFile("/proc/self/cgroup")
	if err != nil {
		t.Fatal(err)
	}
	if len(c.dirs) == 0 {
		t.Fatal("no hierarchies")
	}
	for _, d := range c.dirs {
		if in := cgroupLine(got, d.kind); in != d.rel {
			t.Errorf("%s hierarchy: inside /proc/self/cgroup says %q, want %q\n%s", d.kind, in, d.rel, got)
		}
		if out := cgroupLine(string(own), d.kind); out == d.rel {
			t.Errorf("%s hierarchy: the test process is in %q too, without entering", d.kind, out)
		}
	}
	desc := c.Describe()
	for _, want := range []string{"incarnate-" + c.id, "pids.max 8192", " 64M)"} {
		if !strings.Contains(desc, want) {
			t.Errorf("Describe() = %q, want it to contain %q", desc, want)
		}
	}
	t.Log(desc)
}

// The fork bomb: a shell inside tries to start 50 sleeps under a limit of
// 20 tasks, and the kernel refuses forks from about the 20th on, while the
// test process outside starts 50 of its own without trouble.
func TestCgroupPidsLimit(t *testing.T) {
	const limit, tries = 20, 50
	c := newTestCgroup(t, CgroupLimits{Pids: limit})
	script := fmt.Sprintf(`i=0; while [ $i -lt %d ]; do sleep 1000 </dev/null >/dev/null 2>&1 & echo started; i=$((i+1)); done; echo all started`, tries)
	p := startInside(t, c, "enter", "/bin/sh", "-c", script)
	out := p.rest(t)
	p.cmd.Wait()
	started := strings.Count(out, "started\n") - strings.Count(out, "all started\n")
	if started > limit || strings.Contains(out, "all started") {
		t.Fatalf("%d of %d sleeps started inside a session with pids.max %d:\n%s", started, tries, limit, out)
	}
	if started == 0 {
		t.Fatalf("no sleep started inside at all:\n%s", out)
	}
	if !strings.Contains(out, "fork") {
		t.Errorf("the shell did not say a fork failed:\n%s", out)
	}
	for _, d := range c.dirs {
		if d.kind != cgPids && d.kind != cgV2 {
			continue
		}
		ev, err := readAt(d.dir, "pids.events")
		if err != nil {
			t.Fatal(err)
		}
		if n, _ := strconv.Atoi(strings.TrimSpace(strings.TrimPrefix(ev, "max"))); n == 0 {
			t.Errorf("%s: pids.events says %q, want forks refused at the limit", d.shown, ev)
		}
	}
	t.Logf("%d of %d sleeps started inside", started, tries)

	// Outside, the limit is nobody's business.
	var outside []*exec.Cmd
	defer func() {
		for _, cmd := range outside {
			cmd.Process.Kill()
			cmd.Wait()
		}
	}()
	for range tries {
		cmd := exec.Command("sleep", "1000")
		if err := cmd.Start(); err != nil {
			t.Fatalf("outside the session, sleep %d of %d: %v", len(outside)+1, tries, err)
		}
		outside = append(outside, cmd)
	}
}

// A child that allocates and touches 256 MiB under a 64 MiB limit does
// not get to say it survived.
func TestCgroupMemoryLimit(t *testing.T) {
	if os.Geteuid() == 0 {
		if _, err := cgroupHierarchies(true); err != nil {
			t.Skipf("no memory controller for sessions here: %v", err)
		}
	}
	c := newTestCgroup(t, CgroupLimits{Memory: 64 << 20})
	p := startInside(t, c, "alloc")
	out := p.rest(t)
	err := p.cmd.Wait()
	if err == nil || strings.Contains(out, "survived") {
		t.Fatalf("the child touched %d MiB under a 64 MiB limit: %v\n%s", cgAllocMiB, err, out)
	}
	ws, _ := p.cmd.ProcessState.Sys().(syscall.WaitStatus)
	if !ws.Signaled() || ws.Signal() != syscall.SIGKILL {
		t.Logf("the child failed without the OOM killer: %v\n%s", err, out)
		return
	}
	// Killed: by the session's own OOM killer, its counters say.
	kills := 0
	for _, d := range c.dirs {
		name := ""
		switch d.kind {
		case cgV2:
			name = "memory.events"
		case cgMemory:
			name = "memory.oom_control"
		}
		if name == "" {
			continue
		}
		ev, err := readAt(d.dir, name)
		if err != nil {
			t.Fatal(err)
		}
		for line := range strings.Lines(ev) {
			if n, ok := strings.CutPrefix(strings.TrimSpace(line), "oom_kill "); ok {
				k, _ := strconv.Atoi(n)
				kills += k
			}
		}
	}
	if kills == 0 {
		t.Errorf("the child was killed, but not by the session's OOM killer: %v", err)
	}
}

// Close kills what is left inside, in sub-cgroups and orphaned alike, and
// removes the session's cgroups in every hierarchy.
func TestCgroupCloseKillsAndRemoves(t *testing.T) {
	c := newTestCgroup(t, CgroupLimits{})
	quiet := "</dev/null >/dev/null 2>&1"
	script := fmt.Sprintf(`sleep 1000 %[1]s & echo $!; (sleep 1000 %[1]s & echo $!); echo ready; exec sleep 1000 %[1]s`, quiet)
	p := startInside(t, c, "enter", "/bin/sh", "-c", script)
	var pids []int
	for l := p.line(t); l != "ready"; l = p.line(t) {
		pid, err := strconv.Atoi(l)
		if err != nil {
			t.Fatalf("child said %q", l)
		}
		pids = append(pids, pid)
	}
	// A sub-cgroup with one of them, as a process inside could make.
	var shown []string
	for _, d := range c.dirs {
		shown = append(shown, d.shown)
		if err := unix.Mkdirat(int(d.dir.Fd()), "nested", 0o755); err != nil {
			t.Fatal(err)
		}
		nested, err := openDir(int(d.dir.Fd()), "nested")
		if err != nil {
			t.Fatal(err)
		}
		err = writeAt(nested, d.shown+"/nested", "cgroup.procs", strconv.Itoa(pids[1]))
		nested.Close()
		if err != nil {
			t.Fatal(err)
		}
	}
	if err := c.Close(); err != nil {
		t.Fatal(err)
	}
	err := p.cmd.Wait()
	if ws, ok := p.cmd.ProcessState.Sys().(syscall.WaitStatus); !ok || !ws.Signaled() || ws.Signal() != syscall.SIGKILL {
		t.Errorf("the shell's exec'd sleep: %v, want killed by SIGKILL", err)
	}
	for _, pid := range pids {
		if st := procState(pid); st != "" && st != "Z" {
			t.Errorf("sleep %d is still running (state %s) after Close", pid, st)
		}
	}
	for _, dir := range shown {
		if _, err := os.Stat(dir); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("%s is left behind after Close: %v", dir, err)
		}
	}
	for _, pat := range []string{"/sys/fs/cgroup/*/incarnate-" + c.id, "/sys/fs/cgroup/*/*/incarnate-" + c.id, "/sys/fs/cgroup/*/*/*/incarnate-" + c.id} {
		if left, _ := filepath.Glob(pat); len(left) > 0 {
			t.Errorf("left behind: %v", left)
		}
	}
}

// Killing the session reaches what is inside and nothing outside.
func TestCgroupKillOnlySession(t *testing.T) {
	c := newTestCgroup(t, CgroupLimits{})
	outside := exec.Command("sleep", "1000")
	if err := outside.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() {
		outside.Process.Kill()
		outside.Wait()
	}()
	p := startInside(t, c, "enter", "/bin/sh", "-c", "echo ready; exec sleep 1000")
	if l := p.line(t); l != "ready" {
		t.Fatalf("child said %q", l)
	}
	if err := c.Close(); err != nil {
		t.Fatal(err)
	}
	if err := p.cmd.Wait(); err == nil || !p.cmd.ProcessState.Sys().(syscall.WaitStatus).Signaled() {
		t.Errorf("inside: %v, want killed", err)
	}
	if st := procState(outside.Process.Pid); st == "" || st == "Z" {
		t.Errorf("the sleep outside the session is gone (state %q) after Close", st)
	}
}

// The keeper's life: it makes the session cgroup, enters it, starts a
// process, loses /sys/fs/cgroup from sight (pivot_root; chroot here), and
// Close still kills the process, brings the keeper back out alive first,
// and removes the cgroups.
func TestCgroupKeeperLifecycle(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root: these tests make cgroups below the test's own, which only root may do without a delegated cgroup v2")
	}
	if _, err := CgroupSupport(); err != nil {
		t.Skipf("no session cgroups here: %v", err)
	}
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	id := fmt.Sprintf("test%d-%d", os.Getpid(), cgSeq.Add(1))
	t.Cleanup(func() {
		left, _ := filepath.Glob("/sys/fs/cgroup/*/incarnate-" + id)
		more, _ := filepath.Glob("/sys/fs/cgroup/*/*/*/incarnate-" + id)
		forceRemove(t, append(left, more...))
	})
	cmd := exec.Command(exe, t.TempDir())
	cmd.Env = append(os.Environ(), cgChild+"=keeper", cgChildFds+"="+id)
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer cmd.Wait()
	defer stdin.Close()
	out := bufio.NewReader(stdout)
	l, _ := out.ReadString('\n')
	sleep, err := strconv.Atoi(strings.TrimSpace(l))
	if err != nil {
		t.Fatalf("keeper said %q", l)
	}
	l, _ = out.ReadString('\n')
	if want := "closed: <nil>, sleep: signal: killed\n"; l != want {
		t.Errorf("keeper said %q, want %q", l, want)
	}
	if st := procState(sleep); st != "" && st != "Z" {
		t.Errorf("the keeper's sleep %d is still running (state %s)", sleep, st)
	}
	// Still alive, and back where it was, in every hierarchy.
	got, err := os.ReadFile(fmt.Sprintf("/proc/%d/cgroup", cmd.Process.Pid))
	if err != nil {
		t.Fatal(err)
	}
	own, err := os.ReadFile("/proc/self/cgroup")
	if err != nil {
		t.Fatal(err)
	}
	if string(got) != string(own) {
		t.Errorf("the keeper after Close is in\n%s\nwant where it started, as its parent:\n%s", got, own)
	}
	if left, _ := filepath.Glob("/sys/fs/cgroup/*/incarnate-" + id); len(left) > 0 {
		t.Errorf("left behind: %v", left)
	}
	if left, _ := filepath.Glob("/sys/fs/cgroup/*/*/*/incarnate-" + id); len(left) > 0 {
		t.Errorf("left behind: %v", left)
	}
}

// A leftover incarnate-<id> without processes is replaced; one with a live
// process is refused.
func TestCgroupStale(t *testing.T) {
	c := newTestCgroup(t, CgroupLimits{})
	var shown []string
	for _, d := range c.dirs {
		shown = append(shown, d.shown)
		d.close() // a keeper that crashed: directories stay, fds go
	}
	c.dirs = nil
	for _, dir := range shown {
		if _, err := os.Stat(dir); err != nil {
			t.Fatalf("the leftover: %v", err)
		}
	}
	again, err := NewSessionCgroup(c.id, CgroupLimits{})
	if err != nil {
		t.Fatalf("over a leftover without processes: %v", err)
	}
	t.Cleanup(func() { again.Close() })

	p := startInside(t, again, "enter", "/bin/sh", "-c", "echo ready; exec sleep 1000")
	if l := p.line(t); l != "ready" {
		t.Fatalf("child said %q", l)
	}
	if third, err := NewSessionCgroup(c.id, CgroupLimits{}); err == nil {
		third.Close()
		t.Fatal("made a session cgroup over a live one")
	} else if !errors.Is(err, unix.EBUSY) || !strings.Contains(err.Error(), "has processes") {
		t.Errorf("over a live one: %v, want EBUSY saying it has processes", err)
	}
	if err := again.Close(); err != nil {
		t.Fatal(err)
	}
}

// An ordinary user without a delegated cgroup gets ErrNoCgroupDelegation,
// saying what is missing and the fix, from both NewSessionCgroup and
// CgroupSupport.
func TestCgroupNoDelegation(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root to run a child as uid 65534")
	}
	// The test binary's directory is the go command's, mode 0700.
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	dir, err := os.MkdirTemp("", "cgroup-test")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	bin := filepath.Join(dir, "sandbox.test")
	data, err := os.ReadFile(exe)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(bin, data, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bin)
	cmd.Dir = "/"
	cmd.Env = append(os.Environ(), cgChild+"=nodeleg")
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: 65534, Gid: 65534}}
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("child: %v\n%s", err, out)
	}
	got := string(out)
	for _, want := range []string{"new: true: no cgroup delegation: write access", "support: true: \"\" no cgroup delegation: write access"} {
		if !strings.Contains(got, want) {
			t.Errorf("as uid 65534, want %q in:\n%s", want, got)
		}
	}
	if !strings.Contains(got, "systemd-run --user --scope -p Delegate=yes") && !strings.Contains(got, "run incarnate as root") {
		t.Errorf("as uid 65534, no fix in:\n%s", got)
	}
	t.Log(got)
}
