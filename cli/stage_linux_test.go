package cli

import (
	"bytes"
	"context"
	"debug/elf"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/creack/pty"
	"golang.org/x/sys/unix"

	"github.com/incarnate-dev/incarnate/internal/prestage"
	"github.com/incarnate-dev/incarnate/internal/testbase"
	"github.com/incarnate-dev/incarnate/session"
)

// The pre-runtime stage of `run` (internal/prestage) is only in the
// release build, which these tests make with `make build`, as a user
// would, and run as the harness's incarnate.

func releaseBuild(t testing.TB, dir string) string {
	t.Helper()
	bin := filepath.Join(dir, "incarnate-release")
	if err := testbase.MakeRelease(bin); err != nil {
		t.Fatal(err)
	}
	return bin
}

// entersThroughStage reports whether the ELF file bin starts at the
// stage's entry point.
func entersThroughStage(bin string) (bool, error) {
	f, err := elf.Open(bin)
	if err != nil {
		return false, err
	}
	defer f.Close()
	syms, err := f.Symbols()
	if err != nil {
		return false, err
	}
	for _, s := range syms {
		if (s.Name == prestage.EntrySymbol+".abi0" || s.Name == prestage.EntrySymbol) && s.Value == f.Entry {
			return true, nil
		}
	}
	return false, nil
}

// stageHarness makes h's incarnate the release build, with session s
// (made with env specs) kept warm by a sleep inside.
func stageHarness(t *testing.T, h *harness) *harness {
	h.bin = releaseBuild(t, h.dir)
	if err := os.Chmod(h.bin, 0o755); err != nil {
		t.Fatal(err)
	}
	h.ok("new", "--base", "bb", "--env", "A=1", "--env", "TERM", "--env", "B", "s")
	keepWarm(t, h, "s")
	return h
}

// keepWarm keeps session name's keeper up with a sleep inside until the
// test ends, its keeper started in the environment given.
func keepWarm(t *testing.T, h *harness, name string, env ...string) {
	holder := h.command("run", name, "--", "sleep", "1000")
	holder.Env = append(holder.Env, env...)
	if err := holder.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = holder.Process.Kill()
		_ = holder.Wait()
		h.ok("stop", name)
		waitFor(t, "the session to be free", func() bool { return sessionFree(h, name) })
	})
	waitFor(t, "the holder to run", func() bool { return regexpLine(h.ok("ls"), name, "1") })
}

type stageRun struct {
	stdout, stderr string
	status         int
}

// runStage runs incarnate with INCARNATE_STAGE=mode ("" for the default).
func runStage(t *testing.T, h *harness, mode, dir, stdin string, env []string, args ...string) stageRun {
	t.Helper()
	cmd := h.command(args...)
	cmd.Env = append(cmd.Env, env...)
	if mode != "" {
		cmd.Env = append(cmd.Env, "INCARNATE_STAGE="+mode)
	}
	if dir != "" {
		cmd.Dir = dir
	}
	cmd.Stdin = strings.NewReader(stdin)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	var ee *exec.ExitError
	if err != nil && !errors.As(err, &ee) {
		t.Fatal(err)
	}
	return stageRun{out.String(), errb.String(), cmd.ProcessState.ExitCode()}
}

func TestReleaseBuildEntersThroughStage(t *testing.T) {
	dir := t.TempDir()
	if staged, err := entersThroughStage(releaseBuild(t, dir)); err != nil || !staged {
		t.Errorf("`make build` made a binary that does not start at %s (%v)", prestage.EntrySymbol, err)
	}
	plain := filepath.Join(dir, "plain")
	if out, err := exec.Command("go", "build", "-o", plain, "..").CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	if staged, err := entersThroughStage(plain); err != nil || staged {
		t.Errorf("a plain go build starts at the stage: the flag is not what turns it on")
	}
	// Without the stage, the same command takes the Go path and works.
	h := stageHarness(t, newHarness(t, rootUser))
	h.bin = filepath.Join(h.dir, "plain")
	if err := os.Rename(plain, h.bin); err != nil {
		t.Fatal(err)
	}
	if r := runStage(t, h, "must", "/", "", nil, "run", "s", "--", "echo", "hi"); r.stdout != "hi\n" || r.status != 0 {
		t.Errorf("plain build, run against a keeper: %+v", r)
	}
}

// The blob carried in Go's text is the one its C makes: a change to
// stage.c without `make stage` would leave the old code running.
func TestStageBlobIsCurrent(t *testing.T) {
	want, err := prestage.SourceSum("../internal/prestage/c")
	if err != nil {
		t.Fatal(err)
	}
	blob, err := os.ReadFile("../internal/prestage/blob_amd64.s")
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Contains(blob, []byte("// source "+want+"\n")) {
		t.Errorf("internal/prestage/blob_amd64.s was not made from the C beside it: run `make stage`")
	}
}

// `make stage` makes the very blob checked in, where the tools to build
// it are here (.ci/run installs them).
func TestStageBlobRebuilds(t *testing.T) {
	for _, tool := range []string{"gcc", "ld"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Skipf("rebuilding the stage needs %s, which is not installed", tool)
		}
	}
	fresh := filepath.Join(t.TempDir(), "blob.s")
	if out, err := exec.Command("make", "-C", "..", "--no-print-directory", "stage", "STAGE_OUT="+fresh).CombinedOutput(); err != nil {
		t.Fatalf("make stage: %v\n%s", err, out)
	}
	got, err := os.ReadFile(fresh)
	if err != nil {
		t.Fatal(err)
	}
	want, err := os.ReadFile("../internal/prestage/blob_amd64.s")
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, want) {
		t.Errorf("`make stage` makes another blob than the one checked in: run it and commit the result")
	}
}

// Every `run` the stage sees through gives what the Go path gives: the
// same output, errors and status, the same environment and directory.
// Those it steps aside for still work, through Go.
func TestStageDifferential(t *testing.T) {
	forEachUser(t, func(t *testing.T, h *harness) {
		stageHarness(t, h)
		callerEnv := []string{"TERM=xterm-test", "LANG=C", "LC_ALL=C", "COLORTERM=truecolor", "FOO=kept-out", "B=from-caller", "PWD=" + h.dir}
		big := strings.Repeat("0123456789abcdef", 1<<16) // 1 MiB
		cases := []struct {
			name, dir, stdin string
			handled          bool
			args             []string
		}{
			{"environment", "/", "", true, []string{"run", "s", "--", "sh", "-c", "env | sort"}},
			{"no dashes", "/", "", true, []string{"run", "s", "sh", "-c", `echo "$0" "$@"`, "x", "a b", "c"}},
			{"status", "/", "", true, []string{"run", "s", "--", "sh", "-c", "echo out; echo err >&2; exit 3"}},
			{"killed", "/", "", true, []string{"run", "s", "--", "sh", "-c", "kill -9 $$"}},
			{"stdin", "/", "one\ntwo\n", true, []string{"run", "s", "--", "sh", "-c", "cat; echo done"}},
			{"big stdin", "/", big, true, []string{"run", "s", "--", "md5sum"}},
			{"big output", "/", big, true, []string{"run", "s", "--", "cat"}},
			{"quoted", "/", "", true, []string{"run", "s", "--", "echo", "\"\\\t\x01é"}},
			{"not in the session", h.dir, "", true, []string{"run", "s", "--", "pwd"}},
			{"in the session", "/", "", true, []string{"run", "s", "--", "pwd"}},
			{"not found", "/", "", false, []string{"run", "s", "--", "nosuchcommand"}},
			{"a flag", "/", "", false, []string{"run", "s", "--umask", "077", "--", "sh", "-c", "umask"}},
			{"no session", "/", "", false, []string{"run", "nosuch", "--", "true"}},
		}
		// A bad INCARNATE_LINGER is Go's to refuse, with status 2.
		cases = append(cases, struct {
			name, dir, stdin string
			handled          bool
			args             []string
		}{"bad linger", "/", "", false, []string{"run", "s", "--", "true"}})
		for _, c := range cases {
			callerEnv := callerEnv
			if c.name == "bad linger" {
				callerEnv = append(slices.Clone(callerEnv), "INCARNATE_LINGER=soon")
			}
			goPath := runStage(t, h, "off", c.dir, c.stdin, callerEnv, c.args...)
			mode := "must"
			if !c.handled {
				mode = ""
				if r := runStage(t, h, "must", c.dir, c.stdin, callerEnv, c.args...); r.status != 98 {
					t.Errorf("%s: the stage did not step aside: %+v", c.name, r)
				}
			}
			staged := runStage(t, h, mode, c.dir, c.stdin, callerEnv, c.args...)
			if staged != goPath {
				t.Errorf("%s: through the stage\n%+v\nthrough Go\n%+v", c.name, staged, goPath)
			}
		}
	})
}

// A signal to the client reaches the command, through the stage as
// through Go.
func TestStageForwardsSignals(t *testing.T) {
	h := stageHarness(t, newHarness(t, rootUser))
	for _, mode := range []string{"must", "off"} {
		cmd := h.command("run", "s", "--", "sh", "-c", `trap 'echo got TERM; exit 7' TERM; echo ready; while :; do sleep 0.05; done`)
		cmd.Env = append(cmd.Env, "INCARNATE_STAGE="+mode)
		out, err := cmd.StdoutPipe()
		if err != nil {
			t.Fatal(err)
		}
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		buf := make([]byte, 64)
		n, _ := out.Read(buf)
		if string(buf[:n]) != "ready\n" {
			t.Fatalf("%s: got %q before the signal", mode, buf[:n])
		}
		_ = cmd.Process.Signal(syscall.SIGTERM)
		rest := new(bytes.Buffer)
		_, _ = rest.ReadFrom(out)
		_ = cmd.Wait()
		if rest.String() != "got TERM\n" || cmd.ProcessState.ExitCode() != 7 {
			t.Errorf("%s: after SIGTERM: %q, status %d; want the trap's line and 7", mode, rest, cmd.ProcessState.ExitCode())
		}
	}
}

// fakeKeeper is what the stage meets when it looks for session s: the
// ticket given where a keeper's would be, or for nil a listening socket
// (returned) with a good ticket of its own beside it. It returns the
// environment to run incarnate in.
func fakeKeeper(t testing.TB, ticket []byte) (env []string, ln int) {
	dir := t.TempDir()
	rt := filepath.Join(dir, "incarnate")
	if err := os.Mkdir(rt, 0o700); err != nil {
		t.Fatal(err)
	}
	root := filepath.Join(dir, "store")
	sock := filepath.Join(rt, session.SocketName(root, "s"))
	ln = -1
	if ticket == nil {
		ln = listenAt(t, sock)
		var st unix.Stat_t
		if err := unix.Lstat(sock, &st); err != nil {
			t.Fatal(err)
		}
		tk := prestage.Ticket{EUID: uint32(os.Geteuid()), SockDev: st.Dev, SockIno: st.Ino, Root: root, Name: "s",
			Entered: filepath.Join(dir, "entered"), Head: []string{"HOME=/root"}, Pass: []string{"TERM"},
			Prefixes: []string{"LC_"}, Specs: []string{"A=1", "B"}, Tail: []string{"X=y"}}
		var err error
		if ticket, err = tk.Marshal(); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(tk.Entered, nil, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.WriteFile(prestage.TicketPath(sock), ticket, 0o600); err != nil {
		t.Fatal(err)
	}
	return []string{"XDG_RUNTIME_DIR=" + dir, "INCARNATE_ROOT=" + root, "INCARNATE_STAGE=must", "PATH=/usr/bin:/bin"}, ln
}

func listenAt(t testing.TB, sock string) int {
	ln, err := unix.Socket(unix.AF_UNIX, unix.SOCK_SEQPACKET|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { unix.Close(ln) })
	if err := unix.Bind(ln, &unix.SockaddrUnix{Name: sock}); err != nil {
		t.Fatal(err)
	}
	if err := unix.Listen(ln, 1); err != nil {
		t.Fatal(err)
	}
	return ln
}

// stageBin is the release build, made once for a fuzz target's inputs.
func stageBin(f *testing.F) string { return releaseBuild(f, f.TempDir()) }

// runFake runs the release build against a fake keeper and fails if it
// dies of a signal or hangs: whatever the ticket or the replies hold,
// the stage steps aside or says what broke.
func runFake(t *testing.T, bin string, env []string) int {
	return runFakeArgs(t, bin, env, false, "run", "s", "--", "true")
}

// runFakeArgs is runFake for any arguments, on a terminal when tty.
func runFakeArgs(t *testing.T, bin string, env []string, tty bool, args ...string) int {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, args...)
	cmd.Env = env
	var out []byte
	var err error
	if tty {
		out, err = outputOnPty(cmd)
	} else {
		out, err = cmd.CombinedOutput()
	}
	if cmd.ProcessState == nil {
		t.Fatal(err)
	}
	if ctx.Err() != nil {
		t.Fatalf("the stage hung; it said %q", out)
	}
	if ws, ok := cmd.ProcessState.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
		t.Fatalf("the stage died of %v; it said %q", ws.Signal(), out)
	}
	return cmd.ProcessState.ExitCode()
}

// outputOnPty runs cmd on a fresh pty and returns what it wrote there.
func outputOnPty(cmd *exec.Cmd) ([]byte, error) {
	f, err := pty.Start(cmd)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	var out bytes.Buffer
	copied := make(chan struct{})
	go func() { _, _ = io.Copy(&out, f); close(copied) }()
	err = cmd.Wait()
	f.Close()
	<-copied
	return out.Bytes(), err
}

// A ticket of any bytes is read within its bounds.
func FuzzStageTicket(f *testing.F) {
	good, _ := fakeKeeperTicket()
	f.Add(good)
	f.Add(good[:len(good)/2])
	f.Add(append(good[:12:12], 0xff, 0xff, 0xff, 0x7f))
	f.Add([]byte("incT\x01\x00\x00\x00"))
	f.Add([]byte{})
	bin := stageBin(f)
	f.Fuzz(func(t *testing.T, ticket []byte) {
		env, _ := fakeKeeper(t, ticket)
		runFake(t, bin, env)
	})
}

func fakeKeeperTicket() ([]byte, error) {
	tk := prestage.Ticket{Root: "/r", Name: "s", Entered: "/e", Head: []string{"A=b"}, Specs: []string{"C"}}
	return tk.Marshal()
}

// Replies of any bytes from what looks like the keeper are parsed within
// their bounds: the first answers the spawn, the second comes after.
func FuzzStageReplies(f *testing.F) {
	for _, seed := range [][2]string{
		{`{"started":true}`, `{"exit":0}`},
		{`{"started":true,"started_in":"/root"}`, `{"exit":3}`},
		{`{"started":true,"started_in":"\u001b[2J\ud83d\ude00\\"}`, `{"exit":-1}`},
		{`{"error":{"op":"chdir","err":"x"}}`, ``},
		{`{"started":true}`, `{"exit":99999999999999999999}`},
		{`{"started":true,"x":[[[[{"a":"}"}]]]]}`, `{"children":1}`},
		{`{"started_in":"\u12`, `{`},
		{`{`, `}`},
		// A session's /root made a path whose escapes pass 64 KiB.
		{`{"started":true,"started_in":"` + strings.Repeat(`\u0001`, 12000) + `"}`, `{"exit":0}`},
	} {
		f.Add([]byte(seed[0]), []byte(seed[1]))
	}
	bin := stageBin(f)
	f.Fuzz(func(t *testing.T, first, second []byte) {
		// Once the request is sent, only a refusal or a keeper gone
		// without a word lets Go ask again: anything else may have
		// started the command, which must not start twice.
		for _, enter := range []bool{false, true} {
			env, ln := fakeKeeper(t, nil)
			go answer(ln, first, second, enter)
			status := 0
			if enter {
				status = runFakeArgs(t, bin, env, true, "enter", "--shell", "/bin/sh", "s")
			} else {
				status = runFake(t, bin, env)
			}
			if status == 98 && len(first) > 0 && !bytes.Contains(first, []byte(`"error"`)) {
				t.Errorf("enter %v: the stage stepped aside after the reply %q: Go would start the command again", enter, first)
			}
		}
	})
}

// answer takes one connection on ln, reads the request, closes the fds
// that came with it, and sends the two replies (an empty one is none),
// the first with a pty's master when withPty (as to an enter).
func answer(ln int, first, second []byte, withPty bool) {
	c, _, err := unix.Accept4(ln, unix.SOCK_CLOEXEC)
	if err != nil {
		return
	}
	defer unix.Close(c)
	buf, oob := make([]byte, 1<<20), make([]byte, 256)
	_, oobn, _, _, err := unix.Recvmsg(c, buf, oob, unix.MSG_CMSG_CLOEXEC)
	if err != nil {
		return
	}
	if msgs, err := unix.ParseSocketControlMessage(oob[:oobn]); err == nil {
		for i := range msgs {
			fds, _ := unix.ParseUnixRights(&msgs[i])
			for _, fd := range fds {
				unix.Close(fd)
			}
		}
	}
	var rights []byte
	if withPty {
		if master, slave, err := pty.Open(); err == nil {
			defer master.Close()
			slave.Close()
			rights = unix.UnixRights(int(master.Fd()))
		}
	}
	for _, r := range [][]byte{first, second} {
		if len(r) > 0 {
			_ = unix.Sendmsg(c, r, rights, nil, 0)
		}
		rights = nil
	}
}

// With a stack limit too small for its buffers, the stage leaves the
// command to Go, which runs it: no command of incarnate's may crash on
// a small `ulimit -s`.
func TestStageStepsAsideOnSmallStack(t *testing.T) {
	if _, err := exec.LookPath("prlimit"); err != nil {
		t.Skip("needs prlimit (util-linux) to set the stack limit")
	}
	h := stageHarness(t, newHarness(t, rootUser))
	small := func(mode string, args ...string) stageRun {
		cmd := h.command(append([]string{"--stack=262144", "--", h.bin}, args...)...)
		cmd.Path, cmd.Args[0] = mustLookPath(t, "prlimit"), "prlimit"
		cmd.Env = append(cmd.Env, "INCARNATE_STAGE="+mode)
		var out, errb bytes.Buffer
		cmd.Stdout, cmd.Stderr, cmd.Dir = &out, &errb, "/"
		_ = cmd.Run()
		return stageRun{out.String(), errb.String(), cmd.ProcessState.ExitCode()}
	}
	if r := small("must", "run", "s", "--", "echo", "hi"); r.status != 98 || !strings.Contains(r.stderr, "small stack") {
		t.Errorf("stage with a 256 KiB stack: %+v; want it to step aside", r)
	}
	if r := small("", "run", "s", "--", "echo", "hi"); r != (stageRun{"hi\n", "", 0}) {
		t.Errorf("run with a 256 KiB stack: %+v", r)
	}
	if r := small("", "--help"); r.status != 0 {
		t.Errorf("--help with a 256 KiB stack: %+v", r)
	}
	// A keeper started so has a spawner with that stack too: the C one
	// leaves it to the Go one.
	h.ok("new", "--base", "bb", "cold")
	if r := small("", "run", "cold", "--", "echo", "hi"); r != (stageRun{"hi\n", "", 0}) {
		t.Errorf("a first run with a 256 KiB stack: %+v", r)
	}
}

func mustLookPath(t *testing.T, name string) string {
	p, err := exec.LookPath(name)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// A command the stage sees through, ended by a stop from outside, says
// so as the Go path does.
func TestStageSaysStopped(t *testing.T) {
	h := stageHarness(t, newHarness(t, rootUser))
	var runs []stageRun
	for _, mode := range []string{"must", "off"} {
		if mode == "off" { // the stop took the first holder with it
			holder := h.command("run", "s", "--", "sleep", "1000")
			if err := holder.Start(); err != nil {
				t.Fatal(err)
			}
			defer func() { _ = holder.Process.Kill(); _ = holder.Wait() }()
			waitFor(t, "the holder to run", func() bool { return regexpLine(h.ok("ls"), "s", "1") })
		}
		cmd := h.command("run", "s", "--", "sh", "-c", "echo ready; while :; do sleep 0.05; done")
		cmd.Env = append(cmd.Env, "INCARNATE_STAGE="+mode)
		out, err := cmd.StdoutPipe()
		if err != nil {
			t.Fatal(err)
		}
		var errOut bytes.Buffer
		cmd.Stderr, cmd.Dir = &errOut, "/"
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		buf := make([]byte, 16)
		if n, _ := out.Read(buf); string(buf[:n]) != "ready\n" {
			t.Fatalf("%s: %q", mode, buf[:n])
		}
		h.ok("stop", "s")
		_ = cmd.Wait()
		runs = append(runs, stageRun{"", errOut.String(), cmd.ProcessState.ExitCode()})
	}
	want := stageRun{"", "incarnate: session s was stopped from outside\n", 129}
	if runs[0] != want || runs[1] != want {
		t.Errorf("stopped from outside, through the stage %+v and through Go %+v; want %+v", runs[0], runs[1], want)
	}
}

// Closed standard streams: Go gives them /dev/null, the stage steps
// aside, and the command sees the same either way.
func TestStageClosedStreams(t *testing.T) {
	h := stageHarness(t, newHarness(t, rootUser))
	inner := `echo hello; read x; echo "stdin gave: $x" >&2`
	run := func(mode, closing string) stageRun {
		cmd := exec.Command("sh", "-c", `exec "$0" run s -- sh -c "$1" `+closing, h.bin, inner)
		cmd.Env = append(h.env(), "INCARNATE_STAGE="+mode)
		var out, errb bytes.Buffer
		cmd.Stdout, cmd.Stderr, cmd.Dir = &out, &errb, "/"
		_ = cmd.Run()
		return stageRun{out.String(), errb.String(), cmd.ProcessState.ExitCode()}
	}
	for _, closing := range []string{"0<&-", "0<&- 1>&-", "2>&-"} {
		// (With stderr closed, the reason cannot be read: the status is.)
		if r := run("must", closing); r.status != 98 || (closing != "2>&-" && !strings.Contains(r.stderr, "closed standard stream")) {
			t.Errorf("%s: the stage did not step aside: %+v", closing, r)
		}
		if staged, goPath := run("", closing), run("off", closing); staged != goPath {
			t.Errorf("%s: through the stage %+v, through Go %+v", closing, staged, goPath)
		}
	}
}

// A reader that goes away ends the command and incarnate with SIGPIPE,
// as in any pipeline (` + "`run s -- yes | head -1`" + `), both ways.
func TestBrokenPipeEndsTheRun(t *testing.T) {
	h := stageHarness(t, newHarness(t, rootUser))
	for _, mode := range []string{"must", "off"} {
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		cmd := exec.CommandContext(ctx, h.bin, "run", "s", "--", "yes")
		cmd.Env, cmd.Dir = append(h.env(), "INCARNATE_STAGE="+mode), "/"
		out, err := cmd.StdoutPipe()
		if err != nil {
			t.Fatal(err)
		}
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		buf := make([]byte, 2)
		if _, err := io.ReadFull(out, buf); err != nil || string(buf) != "y\n" {
			t.Fatalf("%s: %q %v", mode, buf, err)
		}
		out.Close()
		_ = cmd.Wait()
		timedOut := ctx.Err() != nil
		cancel()
		ws, _ := cmd.ProcessState.Sys().(syscall.WaitStatus)
		if timedOut || !ws.Signaled() || ws.Signal() != syscall.SIGPIPE {
			t.Errorf("%s: after its reader went: %v (timed out: %v); want death by SIGPIPE", mode, cmd.ProcessState, timedOut)
		}
	}
}

// Every enter the stage sees through shows the shell what the Go path
// shows it: the same shell, environment, directory and terminal, and
// incarnate exits with the same status. The shell comes from --shell,
// the session's own, config.toml as the keeper's ticket recorded it, or
// $SHELL; a config edited since, a flag it does not read, or no
// terminal, and the stage steps aside, leaving it to Go.
func TestStageEnterDifferential(t *testing.T) {
	forEachUser(t, func(t *testing.T, h *harness) {
		config := filepath.Join(h.dir, ".config", "incarnate", "config.toml")
		writeUserFile(t, h, config, "shell = \"/bin/nosuch\"\n")
		stageHarness(t, h) // s: its keeper read config.toml
		h.ok("new", "--base", "bb", "--shell", "/bin/ash", "u")
		keepWarm(t, h, "u")
		noConfig := "XDG_CONFIG_HOME=" + filepath.Join(h.dir, "empty")
		h.ok("new", "--base", "bb", "t")
		keepWarm(t, h, "t", noConfig) // t: its keeper found none
		cases := []struct {
			name    string
			handled bool
			env     []string
			args    []string
		}{
			{"--shell", true, nil, []string{"enter", "--shell", "/bin/ash", "s"}},
			{"--shell=", true, nil, []string{"enter", "s", "--shell=/bin/ash"}},
			{"config.toml's shell", true, []string{"SHELL=/bin/ash"}, []string{"enter", "s"}},
			{"the session's shell", true, []string{"SHELL=/bin/sh"}, []string{"enter", "u"}},
			{"$SHELL", true, []string{noConfig, "SHELL=/bin/ash"}, []string{"enter", "t"}},
			{"$SHELL it lacks", true, []string{noConfig, "SHELL=/bin/nosuch"}, []string{"enter", "t"}},
			{"no $SHELL", true, []string{noConfig}, []string{"enter", "t"}},
			{"another config", false, []string{"SHELL=/bin/ash"}, []string{"enter", "t"}},
			{"a flag", false, nil, []string{"enter", "--cwd", "/tmp", "--shell", "/bin/ash", "s"}},
		}
		for _, c := range cases {
			compareEnters(t, h, c.name, c.handled, c.env, c.args)
		}
		writeUserFile(t, h, config, "shell = \"/bin/ash\"\n")
		compareEnters(t, h, "config.toml edited", false, nil, []string{"enter", "s"})
		if r := runStage(t, h, "must", "/", "exit\n", nil, "enter", "s"); r.status != 98 {
			t.Errorf("enter without a terminal: the stage did not step aside: %+v", r)
		}
	})
}

// writeUserFile writes path, and the directories above it, as h's user.
func writeUserFile(t *testing.T, h *harness, path, text string) {
	t.Helper()
	for dir := filepath.Dir(path); dir != h.dir; dir = filepath.Dir(dir) {
		defer os.Chown(dir, h.u.uid, h.u.gid)
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Chown(path, h.u.uid, h.u.gid); err != nil {
		t.Fatal(err)
	}
}

// compareEnters enters through the stage (or, when it is not to handle
// the case, checks that it steps aside, then lets it) and through Go,
// and compares what the shell shows and the exit status.
func compareEnters(t *testing.T, h *harness, name string, handled bool, env, args []string) {
	t.Helper()
	mode := "must"
	if !handled {
		mode = ""
		cmd := h.command(args...)
		cmd.Env = append(append(cmd.Env, env...), "INCARNATE_STAGE=must")
		if s := h.onPty(t, 30, 91, cmd); s.exit() != 98 {
			t.Errorf("%s: the stage did not step aside: %q", name, s.text())
		}
	}
	staged, status := enterAndLook(t, h, mode, env, args)
	goPath, goStatus := enterAndLook(t, h, "off", env, args)
	if staged != goPath || status != goStatus {
		t.Errorf("%s: through the stage (status %d)\n%s\nthrough Go (status %d)\n%s", name, status, staged, goStatus, goPath)
	}
	if status != 5 {
		t.Errorf("%s: exit status %d, want the shell's 5", name, status)
	}
}

// enterAndLook enters on a 30x91 pty and returns what incarnate says
// before the prompt and what the shell reports of itself, with
// incarnate's exit status.
func enterAndLook(t *testing.T, h *harness, mode string, env, args []string) (string, int) {
	t.Helper()
	cmd := h.command(args...)
	cmd.Env = append(cmd.Env, env...)
	if mode != "" {
		cmd.Env = append(cmd.Env, "INCARNATE_STAGE="+mode)
	}
	s := h.onPty(t, 30, 91, cmd)
	notes := s.upTo("] ") // incarnate's notices, then the prompt
	s.send("X=@; echo \"$X$X $0 $(pwd) $(stty size) $(stty -a | grep -o -e -icanon -e ' icanon')\"; env | sort; echo \"$X$X$X\"; exit 5\r")
	s.expect("\n@@ ")
	seen := s.upTo("@@@")
	return notes + "\n" + seen, s.exit()
}

// upTo waits for want, as expect does, and returns what came before it.
func (s *screen) upTo(want string) string {
	s.t.Helper()
	var before string
	waitFor(s.t, fmt.Sprintf("%q on the screen", want), func() bool {
		s.mu.Lock()
		defer s.mu.Unlock()
		text := s.out.String()
		i := strings.Index(text, want)
		if i >= 0 {
			before = text[:i]
			s.out.Next(i + len(want))
		}
		return i >= 0
	})
	return before
}

// Through the stage too, the terminal is cooked again however the shell
// ends, and a stop from outside is told.
func TestStageRestoresTheTerminal(t *testing.T) {
	h := stageHarness(t, newHarness(t, users()[0]))
	terminalRestored(t, h, "INCARNATE_STAGE=must")
}
