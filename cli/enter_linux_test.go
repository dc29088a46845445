package cli

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/creack/pty"
	"golang.org/x/sys/unix"
)

// screen is a program running on a pty of the test's own, read the way a
// terminal emulator would: everything it printed, accumulated.
type screen struct {
	t    *testing.T
	pty  *os.File
	cmd  *exec.Cmd
	mu   sync.Mutex
	out  bytes.Buffer
	done chan struct{}
}

func (h *harness) onPty(t *testing.T, rows, cols uint16, cmd *exec.Cmd) *screen {
	t.Helper()
	return h.onPtyAnswering(t, rows, cols, cmd, answerQueries)
}

// onPtyAnswering is onPty with a terminal that answers what the program
// writes as answer does.
func (h *harness) onPtyAnswering(t *testing.T, rows, cols uint16, cmd *exec.Cmd, answer func(f *os.File, out []byte)) *screen {
	t.Helper()
	cmd.Env = append(cmd.Env, "TERM=xterm")
	f, err := pty.StartWithSize(cmd, &pty.Winsize{Rows: rows, Cols: cols})
	if err != nil {
		t.Fatal(err)
	}
	s := &screen{t: t, pty: f, cmd: cmd, done: make(chan struct{})}
	go func() {
		buf := make([]byte, 4096)
		for {
			n, err := f.Read(buf)
			answer(f, buf[:n])
			s.mu.Lock()
			s.out.Write(buf[:n])
			s.mu.Unlock()
			if err != nil {
				close(s.done)
				return
			}
		}
	}()
	t.Cleanup(func() { _ = cmd.Process.Kill(); f.Close() })
	return s
}

// answerQueries answers a cursor position request the way a terminal
// emulator does. busybox's line editor asks it at start-up and waits for
// the answer, up to seconds, when nothing answers.
func answerQueries(f *os.File, out []byte) {
	for i := bytes.Count(out, []byte("\x1b[6n")); i > 0; i-- {
		_, _ = f.Write([]byte("\x1b[1;1R"))
	}
}

// enter opens `incarnate enter NAME` (busybox's sh) on a fresh pty.
func (h *harness) enter(t *testing.T, name string) *screen {
	s := h.onPty(t, 24, 80, h.command("enter", "--shell", "/bin/sh", name))
	s.expect("[" + name + "] ")
	return s
}

func (s *screen) text() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.out.String()
}

// expect waits until the screen shows want after everything seen so far
// was consumed, then consumes up to it.
func (s *screen) expect(want string) {
	s.t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for time.Now().Before(deadline) {
		s.mu.Lock()
		i := strings.Index(s.out.String(), want)
		if i >= 0 {
			s.out.Next(i + len(want))
			s.mu.Unlock()
			return
		}
		s.mu.Unlock()
		time.Sleep(5 * time.Millisecond)
	}
	s.t.Fatalf("waited for %q; the screen shows:\n%s", want, s.text())
}

func (s *screen) send(keys string) {
	s.t.Helper()
	if _, err := s.pty.Write([]byte(keys)); err != nil {
		s.t.Fatal(err)
	}
}

// exit waits for the program and returns its exit status.
func (s *screen) exit() int {
	s.t.Helper()
	select {
	case <-s.done:
	case <-time.After(15 * time.Second):
		s.t.Fatalf("still running; the screen shows:\n%s", s.text())
	}
	_ = s.cmd.Wait()
	return s.cmd.ProcessState.ExitCode()
}

func TestEnterIsARealTerminal(t *testing.T) {
	forEachUser(t, func(t *testing.T, h *harness) {
		h.ok("new", "--base", "bb", "s")
		s := h.enter(t, "s")
		s.send("echo $((6*7)) $INCARNATE_SESSION; tty\r")
		s.expect("42 s")
		s.expect("/dev/pts/0")
		s.send("stty size\r")
		s.expect("24 80")
		// Job control: ^Z stops the foreground job, fg resumes it, ^C
		// reaches it and not incarnate.
		s.send("sleep 300\r")
		time.Sleep(100 * time.Millisecond)
		s.send("\x1a")
		s.expect("Stopped")
		s.send("jobs\r")
		s.expect("sleep 300")
		s.send("fg\r")
		time.Sleep(100 * time.Millisecond)
		s.send("\x03")
		s.send("echo status=$?\r")
		s.expect("status=130")
		// A resize of the outer terminal reaches the shell.
		if err := pty.Setsize(s.pty, &pty.Winsize{Rows: 40, Cols: 100}); err != nil {
			t.Fatal(err)
		}
		time.Sleep(100 * time.Millisecond)
		s.send("stty size\r")
		s.expect("40 100")
		s.send("exit 5\r")
		if got := s.exit(); got != 5 {
			t.Errorf("enter exited %d, want the shell's 5", got)
		}
	})
}

func TestTwoShellsShareTheSession(t *testing.T) {
	forEachUser(t, func(t *testing.T, h *harness) {
		h.ok("new", "--base", "bb", "s")
		a := h.enter(t, "s")
		b := h.enter(t, "s")
		a.send("echo from-a > /tmp/shared; sleep 4242 &\r")
		a.expect("[s] ")
		b.send("cat /tmp/shared; echo seen=$(ps | grep -c '[s]leep 4242')\r")
		b.expect("from-a")
		b.expect("seen=1") // a's background job, in b's ps
		if out := h.ok("ls"); !regexpLine(out, "s", "2") {
			t.Errorf("ls should count two shells in s:\n%s", out)
		}
		a.send("exit\r")
		a.exit()
		b.send("exit\r")
		b.exit()
		waitFor(t, "the keeper to let the session go", func() bool { return sessionFree(h, "s") })
		if pids := processesWith("sleep\x004242"); len(pids) != 0 {
			t.Errorf("a background job outlived the session: %v", pids)
		}
	})
}

// regexpLine reports whether out has a line whose first fields are name
// and then, after the base, shells.
func regexpLine(out, name, shells string) bool {
	for _, line := range strings.Split(out, "\n") {
		f := strings.Fields(line)
		if len(f) >= 3 && f[0] == name && f[2] == shells {
			return true
		}
	}
	return false
}

// sessionFree reports whether nothing holds the session's lock, i.e. its
// keeper is gone.
func sessionFree(h *harness, name string) bool {
	f, err := os.Open(filepath.Join(h.store, "sessions", name))
	if err != nil {
		return false
	}
	defer f.Close()
	if unix.Flock(int(f.Fd()), unix.LOCK_EX|unix.LOCK_NB) != nil {
		return false
	}
	return true
}

// Nothing a process inside does reaches out: each of these must fail.
func TestEscapesFail(t *testing.T) {
	forEachUser(t, func(t *testing.T, h *harness) {
		h.ok("new", "--base", "bb", "s")
		bin := h.bin
		attempts := map[string]string{
			"mount":         "mount -t tmpfs none /mnt",
			"mknod":         "mknod /tmp/mem c 1 1",
			"host sysctl":   "echo 1 > /proc/sys/kernel/panic_on_oops",
			"host signal":   fmt.Sprintf("kill -0 %d", os.Getpid()),
			"keeper binary": "echo x >> /proc/1/exe",
			"binary path":   "echo x >> " + bin,
			"ptrace keeper": "cat /proc/1/environ",
		}
		for name, cmd := range attempts {
			out, errOut, status := h.run("run", "s", "--", "sh", "-c", cmd)
			if status == 0 {
				t.Errorf("%s: %q succeeded inside the session (stdout %q, stderr %q)", name, cmd, out, errOut)
			}
		}
		if b, _ := os.ReadFile("/proc/sys/kernel/panic_on_oops"); strings.TrimSpace(string(b)) == "1" {
			t.Errorf("the host's panic_on_oops was changed")
		}
		if out := h.ok("run", "s", "--", "sh", "-c", "ls /proc/self/fd"); out != "0\n1\n2\n3\n" {
			t.Errorf("a command inherited more than fds 0-2: %q", out)
		}
	})
}

// TIOCSTI pushes input into a terminal. The session's shell has a pty of
// its own, so what it pushes can only ever come back to itself; the
// terminal incarnate was started from never sees it. The control run
// shows that the same push from the outer shell does land there.
func TestTIOCSTIStaysInside(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("the control run needs CAP_SYS_ADMIN for TIOCSTI on kernels that restrict it")
	}
	h := newHarness(t, users()[0])
	h.ok("new", "--base", "bb", "s")
	pusher := buildPusher(t, h.dir)
	// Put the pusher into the session.
	in, err := os.Open(pusher)
	if err != nil {
		t.Fatal(err)
	}
	defer in.Close()
	cmd := h.command("run", "s", "--", "sh", "-c", "cat > /push && chmod +x /push")
	cmd.Stdin = in
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("copy the pusher in: %v %s", err, out)
	}
	outside := filepath.Join(h.dir, "pushed-outside")
	control := filepath.Join(h.dir, "pushed-control")
	sh := exec.Command("/bin/sh", "-i")
	sh.Env = h.command().Env
	s := h.onPty(t, 24, 80, sh)
	s.send("PS1='outer$ '\r")
	s.expect("outer$ ")
	// Control: the outer shell pushing into its own terminal works.
	s.send(pusher + " 'touch " + control + "'\r")
	waitFor(t, "the control push to run in the outer shell", func() bool { _, err := os.Stat(control); return err == nil })
	s.send(h.bin + " enter --shell /bin/sh s\r")
	s.expect("[s] ")
	s.send("/push 'touch " + outside + "'; exit\r")
	s.expect("outer$ ")
	s.send("echo outer-alive\r")
	s.expect("outer-alive")
	time.Sleep(200 * time.Millisecond)
	if _, err := os.Stat(outside); err == nil {
		t.Fatalf("input pushed from inside the session ran in the outer terminal")
	}
}

// buildPusher compiles a static program that pushes its argument and a
// newline into its terminal's input with TIOCSTI.
func buildPusher(t *testing.T, dir string) string {
	t.Helper()
	src := filepath.Join(dir, "pusher")
	if err := os.MkdirAll(src, 0o755); err != nil {
		t.Fatal(err)
	}
	prog := `package main

import (
	"os"

	"golang.org/x/sys/unix"
)

func main() {
	for _, c := range []byte(os.Args[1] + "\n") {
		b := c
		if err := unix.IoctlSetPointerInt(0, unix.TIOCSTI, int(b)); err != nil {
			os.Exit(1)
		}
	}
}
`
	if err := os.WriteFile(filepath.Join(src, "main.go"), []byte(prog), 0o644); err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(dir, "push")
	wd, _ := os.Getwd()
	build := exec.Command("go", "build", "-o", out, filepath.Join(src, "main.go"))
	build.Dir = wd // inside this module, for golang.org/x/sys
	build.Env = append(os.Environ(), "CGO_ENABLED=0")
	if b, err := build.CombinedOutput(); err != nil {
		t.Fatalf("build the pusher: %v\n%s", err, b)
	}
	return out
}

// kill -9 of the client, of the shell and of the keeper: each leaves no
// process behind and the session free for the next entry.
func TestKillNineLeavesNothing(t *testing.T) {
	forEachUser(t, func(t *testing.T, h *harness) {
		h.ok("new", "--base", "bb", "s")
		for _, victim := range []string{"client", "shell", "keeper"} {
			t.Run(victim, func(t *testing.T) {
				marker := fmt.Sprintf("%d", 200000+time.Now().UnixNano()%100000)
				s := h.onPty(t, 24, 80, h.command("run", "-t", "s", "--", "sh", "-c", "echo ready; exec sleep "+marker))
				s.expect("ready")
				var sleeper []string
				waitFor(t, "the sleep", func() bool { sleeper = processesWith("sleep\x00" + marker); return len(sleeper) == 1 })
				switch victim {
				case "client":
					_ = s.cmd.Process.Kill()
				case "shell":
					killPid(t, sleeper[0])
				case "keeper":
					killPid(t, parentOf(t, sleeper[0]))
				}
				waitFor(t, "the sleep to die", func() bool { return len(processesWith("sleep\x00"+marker)) == 0 })
				waitFor(t, "the session to be free", func() bool { return sessionFree(h, "s") })
			})
		}
		if out := h.ok("run", "s", "--", "echo", "again"); out != "again\n" {
			t.Errorf("after the kills, run printed %q", out)
		}
	})
}

func killPid(t *testing.T, pid string) {
	t.Helper()
	var n int
	fmt.Sscan(pid, &n)
	if err := unix.Kill(n, unix.SIGKILL); err != nil {
		t.Fatalf("kill %s: %v", pid, err)
	}
}

func parentOf(t *testing.T, pid string) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("/proc", pid, "status"))
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "PPid:"); ok {
			return strings.TrimSpace(v)
		}
	}
	t.Fatalf("no PPid for %s", pid)
	return ""
}

func TestStopEndsEverything(t *testing.T) {
	forEachUser(t, func(t *testing.T, h *harness) {
		h.ok("new", "--base", "bb", "s")
		marker := fmt.Sprintf("%d", 300000+time.Now().UnixNano()%100000)
		bg := h.command("run", "s", "--", "sh", "-c", "trap '' HUP TERM; exec sleep "+marker)
		if err := bg.Start(); err != nil {
			t.Fatal(err)
		}
		waitFor(t, "the sleep", func() bool { return len(processesWith("sleep\x00"+marker)) == 1 })
		if out := h.ok("stop", "--grace", "200ms", "s"); !strings.Contains(out, "stopped") {
			t.Errorf("stop said %q", out)
		}
		_ = bg.Wait()
		if code := bg.ProcessState.ExitCode(); code != 128+9 && code != 128+15 {
			t.Errorf("the stopped command's client exited %d, want 137 or 143", code)
		}
		if len(processesWith("sleep\x00"+marker)) != 0 || !sessionFree(h, "s") {
			t.Errorf("stop left the session running")
		}
		if out := h.ok("stop", "s"); !strings.Contains(out, "nothing runs") {
			t.Errorf("a second stop said %q", out)
		}
	})
}

// Options chosen at new hold on every entry: no network but loopback,
// host binds read-only or writable, a host name of one's own.
func TestSessionOptions(t *testing.T) {
	forEachUser(t, func(t *testing.T, h *harness) {
		shared := filepath.Join(h.dir, "shared")
		if err := os.Mkdir(shared, 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.Chmod(shared, 0o777); err != nil { // writable for the unprivileged uid too
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(shared, "in"), []byte("from-host\n"), 0o644); err != nil {
			t.Fatal(err)
		}
		h.ok("new", "--base", "bb", "--net", "none", "--hostname", "box1",
			"--bind", shared+":/mnt/ro:ro", "--bind", shared+":/mnt/rw", "s")
		out := h.ok("run", "s", "--", "sh", "-c",
			"hostname; ls /sys/class/net; cat /mnt/ro/in; (echo w > /mnt/ro/x) 2>/dev/null || echo ro-refused; echo w > /mnt/rw/out")
		if want := "box1\nlo\nfrom-host\nro-refused\n"; out != want {
			t.Errorf("inside: %q, want %q", out, want)
		}
		if b, err := os.ReadFile(filepath.Join(shared, "out")); err != nil || string(b) != "w\n" {
			t.Errorf("a write through the writable bind: %q, %v", b, err)
		}
		if _, errOut, status := h.run("new", "--net", "bogus", "t"); status == 0 || !strings.Contains(errOut, "host or none") {
			t.Errorf("--net bogus: status %d, %q", status, errOut)
		}
	})
}

// The terminal comes back as it was, however enter ends: the shell killed
// by a signal, or incarnate itself sent SIGTERM.
func TestTerminalIsRestored(t *testing.T) {
	h := newHarness(t, users()[0])
	h.ok("new", "--base", "bb", "s")
	terminalRestored(t, h)
	waitFor(t, "the session to be let go", func() bool { return sessionFree(h, "s") })
}

// terminalRestored enters session s from a shell on a pty, with env
// added to incarnate's, and checks that the terminal is cooked again
// after the shell was killed, after SIGTERM to incarnate, and after the
// session was stopped from outside (which incarnate then says).
func terminalRestored(t *testing.T, h *harness, env ...string) {
	sh := exec.Command("/bin/sh", "-i")
	sh.Env = append(h.command().Env, env...)
	s := h.onPty(t, 24, 80, sh)
	s.send("PS1='outer$ '\r")
	s.expect("outer$ ")
	cooked := func(how string) {
		t.Helper()
		s.send("stty -a | tr ' ' '\\n' | grep -x -e icanon -e -icanon -e echo -e -echo | tr '\\n' ,; echo\r")
		s.expect("icanon,echo,")
		s.expect("outer$ ")
	}
	cooked("before")

	s.send(h.bin + " enter --shell /bin/sh s; echo client-exit=$?\r")
	s.expect("[s] ")
	s.send("kill -9 $$\r")
	s.expect("client-exit=137")
	s.expect("outer$ ")
	cooked("after the shell was killed")

	s.send(h.bin + " enter --shell /bin/sh s; echo client-exit=$?\r")
	s.expect("[s] ")
	var client []string
	waitFor(t, "the client", func() bool {
		client = processesWith(h.bin + "\x00enter\x00--shell")
		return len(client) == 1
	})
	var pid int
	fmt.Sscan(client[0], &pid)
	if err := unix.Kill(pid, unix.SIGTERM); err != nil {
		t.Fatal(err)
	}
	s.expect("client-exit=143")
	s.expect("outer$ ")
	cooked("after SIGTERM to incarnate")

	s.send(h.bin + " enter --shell /bin/sh s; echo client-exit=$?\r")
	s.expect("[s] ")
	h.ok("stop", "s")
	s.expect("incarnate: session s was stopped from outside\r\n")
	s.expect("client-exit=129")
	s.expect("outer$ ")
	cooked("after the session was stopped")
}

// A $SHELL the session lacks falls back to /bin/sh instead of failing.
func TestEnterFallsBackToSh(t *testing.T) {
	h := newHarness(t, users()[0])
	h.ok("new", "--base", "bb", "s")
	cmd := h.command("enter", "s")
	cmd.Env = append(cmd.Env, "SHELL=/bin/no-such-shell")
	s := h.onPty(t, 24, 80, cmd)
	s.expect("[s] ")
	s.send("echo shell=$0\r")
	s.expect("shell=/bin/sh")
	s.send("exit 4\r")
	if got := s.exit(); got != 4 {
		t.Errorf("enter exited %d, want the fallback shell's 4", got)
	}
	// The session's own setting wins over $SHELL.
	h.ok("new", "--base", "bb", "--shell", "/bin/ash", "t")
	cmd = h.command("enter", "t")
	cmd.Env = append(cmd.Env, "SHELL=/bin/sh")
	s = h.onPty(t, 24, 80, cmd)
	s.expect("[t] ")
	s.send("echo shell=$0\r")
	s.expect("shell=/bin/ash")
	s.send("exit\r")
	s.exit()
}

// Commands piped into enter run in the session's shell, with no terminal
// in between, and their end ends it; run -t passes the end of piped
// input on as the terminal's EOF. Neither waits for more.
func TestPipedInputEnds(t *testing.T) {
	forEachUser(t, func(t *testing.T, h *harness) {
		h.ok("new", "--base", "bb", "s")
		for _, tt := range []struct {
			args   []string
			stdin  string // "" is /dev/null
			out    string
			status int
		}{
			{[]string{"enter", "s"}, "echo hi; hostname; exit 4\n", "hi\ns\n", 4},
			{[]string{"enter", "s"}, "", "", 0},
			{[]string{"run", "-t", "s", "--", "sh"}, "hostname\n", "\r\ns\r\n", 0},
			{[]string{"run", "-t", "s", "--", "true"}, "", "", 0},
		} {
			cmd := h.command(tt.args...)
			if tt.stdin != "" {
				cmd.Stdin = strings.NewReader(tt.stdin)
			}
			var out bytes.Buffer
			cmd.Stdout, cmd.Stderr = &out, &out
			done := make(chan error, 1)
			if err := cmd.Start(); err != nil {
				t.Fatal(err)
			}
			go func() { done <- cmd.Wait() }()
			select {
			case <-done:
			case <-time.After(10 * time.Second):
				_ = cmd.Process.Kill()
				t.Fatalf("%v with %q piped in still runs after 10 s:\n%q", tt.args, tt.stdin, out.String())
			}
			if status := cmd.ProcessState.ExitCode(); status != tt.status || !strings.Contains(out.String(), tt.out) {
				t.Errorf("%v with %q piped in: exit %d, output %q; want %d and %q", tt.args, tt.stdin, status, out.String(), tt.status, tt.out)
			}
		}
	})
}
