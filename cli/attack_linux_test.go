package cli

import (
	"archive/tar"
	"bufio"
	"bytes"
	"fmt"
	"hash/fnv"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/incarnate-dev/incarnate/internal/testbase"
)

// The attacks of issue 10, each run for real from inside a session (or
// against one, from the host), as root and as an ordinary user with and
// without sub-ids. Each test fails only when the attack got through: it
// checks what the attack would change on the host, not merely that an
// error was printed. Where busybox cannot make the syscalls an attack
// needs, the static probe (internal/testbase/probe) is bound in at
// /probe.

// probeSession makes session name on the busybox base with the probe
// bound at /probe and the extra options of new, and returns the probe's
// host path.
func (h *harness) probeSession(name string, opts ...string) string {
	h.t.Helper()
	probe := testbase.Probe(h.t)
	args := append([]string{"new", "--base", "bb", "--bind", probe + ":/probe:ro"}, opts...)
	h.ok(append(args, name)...)
	return probe
}

// runWith runs incarnate with extra environment and returns its combined
// output and exit status.
func (h *harness) runWith(env []string, args ...string) (string, int) {
	h.t.Helper()
	cmd := h.command(args...)
	cmd.Env = append(cmd.Env, env...)
	out, err := cmd.CombinedOutput()
	if _, ok := err.(*exec.ExitError); err != nil && !ok {
		h.t.Fatalf("incarnate %v: %v", args, err)
	}
	return string(out), cmd.ProcessState.ExitCode()
}

// sharedWritable makes a directory under the harness's that every uid may
// write, for binds the unprivileged users write through.
func sharedWritable(t *testing.T, h *harness, name string) string {
	t.Helper()
	d := filepath.Join(h.dir, name)
	if err := os.Mkdir(d, 0o777); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(d, 0o777); err != nil {
		t.Fatal(err)
	}
	return d
}

// runtimeDir is the harness user's runtime directory: XDG_RUNTIME_DIR is
// unset, so it lies in /tmp, named by the host uid.
func (h *harness) runtimeDir() string {
	return filepath.Join(os.TempDir(), fmt.Sprintf("incarnate-%d", h.u.uid))
}

// keeperSocket is where session name's keeper listens (session's
// socketPath: a hash of the store and the name).
func (h *harness) keeperSocket(name string) string {
	sum := fnv.New64a()
	fmt.Fprintf(sum, "%s\x00%s", h.store, name)
	return filepath.Join(h.runtimeDir(), fmt.Sprintf("%016x.sock", sum.Sum64()))
}

// processesStarting lists host pids whose command line starts with s:
// the probe itself, not the incarnate that names it.
func processesStarting(s string) []string {
	var pids []string
	for _, pid := range processesWith(s) {
		b, err := os.ReadFile(filepath.Join("/proc", pid, "cmdline"))
		if err == nil && strings.HasPrefix(string(b), s) {
			pids = append(pids, pid)
		}
	}
	return pids
}

// probeResults reads the probe's "what: result" lines.
func probeResults(out string) map[string]string {
	res := map[string]string{}
	for _, l := range strings.Split(out, "\n") {
		if k, v, ok := strings.Cut(l, ": "); ok {
			res[k] = v
		}
	}
	return res
}

// 1. A root session could kill or freeze any host process through the
// cgroup hierarchies it mounted. The victims are two host sleeps in
// cgroups of the test's own; the session is told their names, and tries
// cgroup2 and the v1 freezer, in place, in new mount and cgroup
// namespaces, and in a new user namespace besides.
func TestAttackCgroupEscape(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("the victims' cgroups are made by root")
	}
	forEachUser(t, func(t *testing.T, h *harness) {
		name := fmt.Sprintf("incarnate-attack-%d", time.Now().UnixNano())
		killed := cgroupVictim(t, name+"-kill", "/sys/fs/cgroup/unified")
		frozen := cgroupVictim(t, name+"-freeze", "/sys/fs/cgroup/unified", "/sys/fs/cgroup/freezer")
		h.probeSession("s")
		probeOut, _, _ := h.run("run", "s", "--", "/probe", "cgroup", name)
		// busybox's unshare has no -C: the probe covers cgroup namespaces,
		// the shell the plain mounts and unshare -m and -Urm.
		script := `N=$1
hit() {
	for d in $(find "$1" -maxdepth 4 -type d -name "$N-*" 2>/dev/null); do
		echo "$2 found $d"
		case $d in
		*-kill) echo 1 > $d/cgroup.kill && echo "$2 wrote $d/cgroup.kill" ;;
		*) { echo 1 > $d/cgroup.freeze && echo "$2 wrote $d/cgroup.freeze"; } 2>/dev/null
		   { echo FROZEN > $d/freezer.state && echo "$2 wrote $d/freezer.state"; } 2>/dev/null ;;
		esac
	done 2>/dev/null
}
attack() {
	mkdir -p /tmp/cg2-$1 /tmp/cg1-$1
	mount -t cgroup2 none /tmp/cg2-$1 2>/dev/null && echo "$1 mounted cgroup2" && hit /tmp/cg2-$1 $1
	mount -t cgroup -o freezer none /tmp/cg1-$1 2>/dev/null && echo "$1 mounted freezer" && hit /tmp/cg1-$1 $1
	hit /sys/fs/cgroup $1
}
attack "$2"`
		shOut, _, _ := h.run("run", "s", "--", "sh", "-c",
			`sh -c "$1" x "$2" direct; unshare -m sh -c "$1" x "$2" unshare-m; unshare -Urm sh -c "$1" x "$2" unshare-Urm; true`,
			"sh", script, name)
		t.Logf("from inside:\n%s%s", probeOut, shOut)
		select {
		case <-killed.gone:
			t.Errorf("a host process was killed through cgroup.kill from inside the session")
		default:
		}
		frozen.checkThawed(t)
	})
}

type victim struct {
	cmd  *exec.Cmd
	dirs []string
	gone chan struct{}
}

// cgroupVictim starts a host sleep in a cgroup called name under each of
// the hierarchies, and ends both when the test does.
func cgroupVictim(t *testing.T, name string, hierarchies ...string) *victim {
	t.Helper()
	v := &victim{cmd: exec.Command("sleep", "1000"), gone: make(chan struct{})}
	if err := v.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { _ = v.cmd.Wait(); close(v.gone) }()
	t.Cleanup(func() {
		v.thaw()
		_ = v.cmd.Process.Kill()
		<-v.gone
		for _, d := range v.dirs {
			if err := os.Remove(d); err != nil {
				t.Errorf("remove the victim's cgroup: %v", err)
			}
		}
	})
	for _, hier := range hierarchies {
		d := filepath.Join(hier, name)
		if err := os.Mkdir(d, 0o755); err != nil {
			t.Fatalf("make the victim's cgroup: %v", err)
		}
		v.dirs = append(v.dirs, d)
		if err := os.WriteFile(filepath.Join(d, "cgroup.procs"), []byte(strconv.Itoa(v.cmd.Process.Pid)), 0); err != nil {
			t.Fatalf("move the victim into %s: %v", d, err)
		}
	}
	return v
}

func (v *victim) thaw() {
	for _, d := range v.dirs {
		_ = os.WriteFile(filepath.Join(d, "cgroup.freeze"), []byte("0"), 0)
		_ = os.WriteFile(filepath.Join(d, "freezer.state"), []byte("THAWED"), 0)
	}
}

func (v *victim) checkThawed(t *testing.T) {
	t.Helper()
	select {
	case <-v.gone:
		t.Errorf("a host process was killed from inside the session")
	default:
	}
	for _, d := range v.dirs {
		if b, err := os.ReadFile(filepath.Join(d, "cgroup.freeze")); err == nil && strings.TrimSpace(string(b)) != "0" {
			t.Errorf("host cgroup %s: cgroup.freeze is %q after the session ran", d, b)
		}
		if b, err := os.ReadFile(filepath.Join(d, "freezer.state")); err == nil && strings.TrimSpace(string(b)) != "THAWED" {
			t.Errorf("host cgroup %s: freezer.state is %q after the session ran", d, b)
		}
	}
}

// 2. The keeper ran whatever process setup a client sent, and a process
// inside could reach its socket. Binds that would hand the socket in must
// be refused; and where a socket gets in regardless (here a hard link the
// host makes into a writable bind), the keeper must refuse a peer inside
// the session, in the current wire format and in the earlier one.
func TestAttackKeeperRequest(t *testing.T) {
	forEachUser(t, func(t *testing.T, h *harness) {
		d := sharedWritable(t, h, "d")
		h.probeSession("s", "--bind", d+":/mnt/d")
		h.ok("run", "s", "--", "true") // the runtime dir exists from here on

		t.Run("binds", func(t *testing.T) {
			for i, bind := range []string{h.runtimeDir() + ":/x", "/tmp:/tmp", "/tmp:/x", h.store + ":/x"} {
				name := fmt.Sprintf("b%d", i)
				out, status := h.runWith(nil, "new", "--base", "bb", "--bind", testbase.Probe(t)+":/probe:ro", "--bind", bind, name)
				if status != 0 {
					continue
				}
				t.Errorf("new --bind %s was accepted:\n%s", bind, out)
				if !strings.HasPrefix(bind, "/tmp:/tmp") {
					continue
				}
				// The attack of the issue: ask the session's own keeper,
				// through /tmp, to write a file only it would write.
				pwned := filepath.Join(d, "pwned-"+name)
				out, _ = h.runWith(nil, "run", name, "--", "/probe", "keeper", h.keeperSocket(name), "grep -E '^(Uid|CapEff|NoNewPrivs|Seccomp):' /proc/self/status > "+pwned)
				t.Logf("the probe inside, through /tmp:\n%s", out)
				if b, err := os.ReadFile(pwned); err == nil {
					t.Errorf("through --bind /tmp:/tmp the session's keeper ran a request from inside; its status:\n%s", b)
				}
			}
		})

		t.Run("peer", func(t *testing.T) {
			pwned := filepath.Join(d, "pwned")
			cmd := h.command("run", "s", "--", "/probe", "keeper", "/mnt/d/k.sock", "grep -E '^(Uid|CapEff|NoNewPrivs|Seccomp):' /proc/self/status > /mnt/d/pwned")
			var out bytes.Buffer
			cmd.Stdout, cmd.Stderr = &out, &out
			if err := cmd.Start(); err != nil {
				t.Fatal(err)
			}
			// The keeper that started the probe listens on the socket now
			// (one of an earlier run may have left a stale file there).
			waitFor(t, "the probe to run", func() bool { return len(processesStarting("/probe\x00keeper\x00")) > 0 })
			link := filepath.Join(d, "k.sock")
			if err := os.Link(h.keeperSocket("s"), link); err != nil {
				t.Fatalf("link the keeper's socket into the bind: %v", err)
			}
			// Open the socket itself to the session's ids, so that what is
			// tested is the keeper's check of its peer, not the socket's
			// mode (the runtime dir stays closed to everyone else).
			if err := os.Chmod(link, 0o777); err != nil {
				t.Fatal(err)
			}
			_ = cmd.Wait()
			t.Logf("the probe inside:\n%s", out.String())
			if b, err := os.ReadFile(pwned); err == nil {
				t.Errorf("the keeper ran a request from inside the session; its status:\n%s", b)
			}
		})
	})
}

// 3. Root inside changed host files it could reach: the device nodes in
// /dev, the caller's own stdout handed in, and a set-uid file planted in
// a writable bind.
func TestAttackHostFiles(t *testing.T) {
	forEachSpawner(t, func(t *testing.T, h *harness) {
		rw := sharedWritable(t, h, "rw")
		h.probeSession("s", "--bind", rw+":/mnt/rw")

		t.Run("devices", func(t *testing.T) {
			type node struct {
				mode     uint32
				uid, gid uint32
			}
			nodes := map[string]node{}
			for _, p := range []string{"/dev/zero", "/dev/null"} {
				var st unix.Stat_t
				if err := unix.Stat(p, &st); err != nil {
					t.Fatal(err)
				}
				nodes[p] = node{st.Mode, st.Uid, st.Gid}
			}
			restore := func() {
				for p, n := range nodes {
					_ = unix.Chmod(p, n.mode&0o7777)
					_ = unix.Chown(p, int(n.uid), int(n.gid))
				}
			}
			t.Cleanup(restore)
			out, _ := h.runWith(nil, "run", "s", "--", "sh", "-c", "chmod 000 /dev/zero; chown 1:1 /dev/null; ls -ln /dev/zero /dev/null")
			for p, n := range nodes {
				var st unix.Stat_t
				if err := unix.Stat(p, &st); err != nil {
					t.Fatal(err)
				}
				if got := (node{st.Mode, st.Uid, st.Gid}); got != n {
					t.Errorf("host %s changed from inside: mode %o owner %d:%d, was %o %d:%d\n%s", p, got.mode, got.uid, got.gid, n.mode, n.uid, n.gid, out)
				}
			}
			restore()
		})

		t.Run("stdout", func(t *testing.T) {
			// A root-owned host file as the caller's stdout: whoever
			// chmods it from inside reaches the host's inode.
			path := filepath.Join(h.dir, "out")
			f, err := os.OpenFile(path, os.O_CREATE|os.O_WRONLY, 0o644)
			if err != nil {
				t.Fatal(err)
			}
			defer f.Close()
			cmd := h.command("run", "s", "--", "sh", "-c", "chown 0:0 /proc/self/fd/1; chmod 4755 /proc/self/fd/1")
			cmd.Stdout = f
			_ = cmd.Run()
			fi, err := os.Stat(path)
			if err != nil {
				t.Fatal(err)
			}
			if fi.Mode() != 0o644 {
				t.Errorf("the host file given as stdout was changed from inside: mode %v, want -rw-r--r--", fi.Mode())
			}
		})

		t.Run("host-groups", func(t *testing.T) {
			// A supplementary group of root's opens a host file of that
			// group through a bind, where the session's own ids do not.
			if h.u.uid != 0 || os.Geteuid() != 0 {
				t.Skip("only root gives its keeper groups of its choosing")
			}
			secret := filepath.Join(rw, "group-only")
			if err := os.WriteFile(secret, []byte("for group 4242\n"), 0o040); err != nil {
				t.Fatal(err)
			}
			defer os.Remove(secret)
			if err := os.Chown(secret, 0, 4242); err != nil {
				t.Fatal(err)
			}
			waitFor(t, "the session to be free", func() bool { return sessionFree(h, "s") })
			cmd := h.command("run", "s", "--", "sh", "-c", "grep Groups /proc/self/status; cat /mnt/rw/group-only")
			cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: 0, Gid: 0, Groups: []uint32{4242}}}
			out, _ := cmd.CombinedOutput()
			if strings.Contains(string(out), "for group 4242") {
				t.Errorf("the caller's supplementary group went into the session, and opened a host file of that group:\n%s", out)
			}
		})

		t.Run("setuid-bind", func(t *testing.T) {
			planted := filepath.Join(rw, "p")
			defer os.Remove(planted)
			out, _ := h.runWith(nil, "run", "s", "--", "sh", "-c", "cp /probe /mnt/rw/p && chmod 4755 /mnt/rw/p; ls -ln /mnt/rw/p")
			var st unix.Stat_t
			if err := unix.Stat(planted, &st); err != nil {
				t.Skipf("nothing was planted (%v):\n%s", err, out)
			}
			t.Logf("planted: mode %o owner %d", st.Mode&0o7777, st.Uid)
			if os.Geteuid() != 0 {
				t.Skip("needs root, to run the planted file as another user")
			}
			run := exec.Command(planted, "euid")
			run.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: 65534, Gid: 65534}}
			euid, err := run.Output()
			if err != nil {
				t.Fatalf("run the planted file as uid 65534: %v", err)
			}
			if strings.TrimSpace(string(euid)) == "0" {
				t.Errorf("a file planted in a writable bind runs as root for host uid 65534 (mode %o, owner %d)", st.Mode&0o7777, st.Uid)
			}
		})
	})
}

// 4. A process left behind in the session read what the user typed at
// the host's prompt afterwards, and wrote fake prompts to the terminal:
// run without -t, and enter with piped input, handed the terminal in.
func TestAttackTerminal(t *testing.T) {
	forEachUser(t, func(t *testing.T, h *harness) {
		h.ok("new", "--base", "bb", "s")
		// A holder keeps the session's keeper, and with it what is left
		// behind, alive after each command.
		h.holdKeeper(t, "s")
		// The job left behind reads the command's stdin (kept as fd 3:
		// the stdin of a background job is /dev/null) and then its
		// stderr, which were the terminal when they were handed in.
		leftBehind := func(tag string) string {
			return "exec 3<&0; (sleep 1; cat <&3; cat <&2) > /tmp/stolen-" + tag +
				" & (sleep 1; echo FAKE-PROMPT-" + tag + "; echo FAKE-PROMPT-" + tag + " >&2) &"
		}
		script := filepath.Join(h.dir, "piped")
		if err := os.WriteFile(script, []byte(leftBehind("enter")+"\n"), 0o644); err != nil {
			t.Fatal(err)
		}
		for _, tt := range []struct{ tag, line string }{
			{"run", h.bin + " run s -- sh -c '" + leftBehind("run") + "'"},
			{"enter", "cat " + script + " | " + h.bin + " enter s"},
		} {
			t.Run(tt.tag, func(t *testing.T) {
				sh := h.command()
				sh.Path, sh.Args = "/bin/sh", []string{"/bin/sh", "-i"}
				s := h.onPty(t, 24, 80, sh)
				s.send("PS1='outer$ '\r")
				s.expect("outer$ ")
				start := time.Now()
				s.send(tt.line + "; echo " + tt.tag + "-$((1+1))-returned\r")
				returned := tt.tag + "-2-returned"
				early := s.await(returned, 3*time.Second)
				// The job behind starts reading after a second; type at
				// the host's prompt once it does.
				time.Sleep(time.Until(start.Add(1500 * time.Millisecond)))
				for range 3 {
					s.send("echo typed-after\r")
					time.Sleep(100 * time.Millisecond)
				}
				if !early {
					if !s.await(returned, 10*time.Second) {
						t.Fatalf("%s did not return, even once lines were typed; the screen shows:\n%s", tt.tag, s.text())
					}
					t.Errorf("%s returned only once lines were typed: it kept reading the terminal after the command ended", tt.tag)
				}
				time.Sleep(time.Second)
				if screen := s.text(); strings.Contains(screen, "FAKE-PROMPT") {
					t.Errorf("a process left in the session wrote to the host's terminal after %s returned:\n%s", tt.tag, screen)
				}
				stolen, _ := h.runWith(nil, "run", "s", "--", "cat", "/tmp/stolen-"+tt.tag)
				if strings.Contains(stolen, "typed-after") {
					t.Errorf("a process left in the session read what was typed at the host's terminal after %s: %q", tt.tag, stolen)
				}
				h.runWith(nil, "run", "s", "--", "sh", "-c", "pkill cat")
			})
		}
		h.runWith(nil, "stop", "--grace", "100ms", "s")
	})
}

// await is expect that reports a timeout instead of failing.
func (s *screen) await(want string, timeout time.Duration) bool {
	for deadline := time.Now().Add(timeout); time.Now().Before(deadline); time.Sleep(5 * time.Millisecond) {
		s.mu.Lock()
		i := strings.Index(s.out.String(), want)
		if i >= 0 {
			s.out.Next(i + len(want))
		}
		s.mu.Unlock()
		if i >= 0 {
			return true
		}
	}
	return false
}

// 5. The caller's session keyring could be read and cleared from inside.
// The probe on the host plays the login session: a named session keyring
// with a secret, in which it runs incarnate; the probe inside reads and
// clears what it can.
func TestAttackKeyring(t *testing.T) {
	forEachSpawner(t, func(t *testing.T, h *harness) {
		probe := h.probeSession("s")
		desc := fmt.Sprintf("attack-%d", time.Now().UnixNano())
		secret := "keyring-secret-" + desc
		cmd := h.command()
		cmd.Path = probe
		cmd.Args = []string{cmd.Path, "keyring-host", desc, secret, h.bin, "run", "s", "--", "/probe", "keyring-steal", desc}
		b, err := cmd.CombinedOutput()
		out := string(b)
		t.Logf("probe on the host, and inside:\n%s", out)
		if err != nil && !strings.Contains(out, "host-key:") {
			t.Fatalf("the host side of the probe failed: %v", err)
		}
		if strings.Contains(out, secret) {
			t.Errorf("the payload of the caller's session key was read from inside")
		}
		if !strings.Contains(out, "host-key: intact\n") {
			t.Errorf("the caller's session key was changed or unlinked from inside")
		}
	})
}

// 6. Host abstract unix sockets were reachable, and a root session looked
// like real uid 0 to them. The host service here hands its secret to a
// peer whose SO_PEERCRED uid is 0. Where the kernel has Landlock's scopes
// (ABI 6), the connect itself must fail; with --net none it always must.
func TestAttackAbstractSocket(t *testing.T) {
	forEachSpawner(t, func(t *testing.T, h *harness) {
		name := fmt.Sprintf("incarnate-attack-%d", time.Now().UnixNano())
		svc := listenAbstract(t, name)
		h.probeSession("s")
		h.probeSession("offline", "--net", "none")

		out, _ := h.runWith(nil, "run", "s", "--", "/probe", "abstract", name)
		accepted, secrets := svc.counts()
		t.Logf("inside: %s(the host service accepted %d, handed the secret to %d)", out, accepted, secrets)
		if secrets > 0 || strings.Contains(out, "SECRET") {
			t.Errorf("a host service that trusts SO_PEERCRED uid 0 handed its secret to the session")
		}
		if abi := landlockABI(); abi >= 6 && (accepted > 0 || probeResults(out)["connect"] == "ok") {
			t.Errorf("the session reached a host abstract socket although the kernel has Landlock ABI %d", abi)
		}

		out, _ = h.runWith(nil, "run", "offline", "--", "/probe", "abstract", name)
		if after, _ := svc.counts(); after > accepted || probeResults(out)["connect"] == "ok" {
			t.Errorf("a --net none session reached a host abstract socket: %s", out)
		}
	})
}

type abstractService struct {
	mu               sync.Mutex
	accepted, secret int
}

func (s *abstractService) counts() (int, int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.accepted, s.secret
}

// listenAbstract serves @name: "SECRET" to a peer of uid 0, "hello" to
// anyone else.
func listenAbstract(t *testing.T, name string) *abstractService {
	t.Helper()
	l, err := net.ListenUnix("unix", &net.UnixAddr{Name: "@" + name, Net: "unix"})
	if err != nil {
		t.Fatal(err)
	}
	svc := &abstractService{}
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			c, err := l.AcceptUnix()
			if err != nil {
				return
			}
			var cred *unix.Ucred
			if raw, err := c.SyscallConn(); err == nil {
				_ = raw.Control(func(fd uintptr) { cred, _ = unix.GetsockoptUcred(int(fd), unix.SOL_SOCKET, unix.SO_PEERCRED) })
			}
			svc.mu.Lock()
			svc.accepted++
			reply := "hello"
			if cred != nil && cred.Uid == 0 {
				reply = "SECRET"
				svc.secret++
			}
			svc.mu.Unlock()
			_, _ = c.Write([]byte(reply))
			c.Close()
		}
	}()
	t.Cleanup(func() { l.Close(); <-done })
	return svc
}

// landlockABI is the kernel's Landlock ABI version, 0 without Landlock.
func landlockABI() int {
	abi, _, e := unix.Syscall(unix.SYS_LANDLOCK_CREATE_RULESET, 0, 0, unix.LANDLOCK_CREATE_RULESET_VERSION)
	if e != 0 {
		return 0
	}
	return int(abi)
}

// 7. There was no seccomp filter: every process had full capabilities in
// namespaces of its own, and the kernel surface of io_uring, bpf, keyctl,
// userfaultfd, new namespaces and new mounts. A --nested session may make
// namespaces, and nothing more.
func TestAttackSeccomp(t *testing.T) {
	refused := []string{"io_uring_setup", "bpf", "userfaultfd", "perf_event_open", "kexec_load", "init_module",
		"open_by_handle_at", "keyctl"}
	namespaces := []string{"clone-newuser", "unshare-newuser", "unshare-newns", "unshare-newnet", "fsopen", "mount"}
	check := func(t *testing.T, out string, nested bool) {
		t.Helper()
		res := probeResults(out)
		want := refused
		if !nested {
			want = append(append([]string{}, refused...), namespaces...)
			if res["clone3"] != "ENOSYS" {
				t.Errorf("clone3 answered %q inside, want ENOSYS so that libc falls back to clone", res["clone3"])
			}
		}
		for _, call := range want {
			if r, ok := res[call]; !ok || r == "ok" {
				t.Errorf("%s inside: %q, want it refused", call, r)
			}
		}
		if res["Seccomp"] != "2" || res["NoNewPrivs"] != "1" {
			t.Errorf("inside, /proc/self/status says Seccomp %q and NoNewPrivs %q, want 2 and 1", res["Seccomp"], res["NoNewPrivs"])
		}
	}
	forEachSpawner(t, func(t *testing.T, h *harness) {
		t.Run("default", func(t *testing.T) {
			h.probeSession("s")
			out, _ := h.runWith(nil, "run", "s", "--", "/probe", "syscalls")
			t.Logf("inside:\n%s", out)
			check(t, out, false)
			if out, status := h.runWith(nil, "run", "s", "--", "unshare", "-U", "true"); status == 0 {
				t.Errorf("busybox unshare -U made a user namespace inside: %s", out)
			}
		})
		t.Run("nested", func(t *testing.T) {
			h.probeSession("n", "--nested")
			out, _ := h.runWith(nil, "run", "n", "--", "/probe", "syscalls")
			t.Logf("inside a --nested session:\n%s", out)
			check(t, out, true)
			res := probeResults(out)
			for _, call := range []string{"clone-newuser", "unshare-newuser"} {
				if res[call] != "ok" {
					t.Errorf("%s in a --nested session: %q, want ok", call, res[call])
				}
			}
			if out, status := h.runWith(nil, "run", "n", "--", "unshare", "-U", "true"); status != 0 {
				t.Errorf("busybox unshare -U in a --nested session: exit %d: %s", status, out)
			}
		})
	})
}

// 8. The caller's whole environment went in. Only the allowlist passes by
// default; --env adds a name or a NAME=VALUE, on run and on new.
func TestAttackEnvironment(t *testing.T) {
	forEachUser(t, func(t *testing.T, h *harness) {
		h.ok("new", "--base", "bb", "s")
		callers := []string{"SECRET_TOKEN=xyz", "SSH_AUTH_SOCK=/tmp/agent"}
		out, status := h.runWith(callers, "run", "s", "--", "env")
		if status != 0 {
			t.Fatalf("run env: exit %d: %s", status, out)
		}
		for _, name := range []string{"SECRET_TOKEN", "SSH_AUTH_SOCK", "INCARNATE_ROOT"} {
			if strings.Contains(out, name+"=") {
				t.Errorf("the caller's %s went into the session:\n%s", name, out)
			}
		}
		for _, tt := range []struct {
			name, want string
			args       []string
		}{
			{"run --env NAME", "SECRET_TOKEN=xyz", []string{"run", "--env", "SECRET_TOKEN", "s", "--", "env"}},
			{"run --env NAME=VALUE", "A=b", []string{"run", "--env", "A=b", "s", "--", "env"}},
			{"new --env NAME=VALUE", "K=v", []string{"run", "s2", "--", "env"}},
		} {
			t.Run(tt.name, func(t *testing.T) {
				if tt.args[1] == "s2" {
					if out, status := h.runWith(nil, "new", "--base", "bb", "--env", "K=v", "s2"); status != 0 {
						t.Fatalf("new --env K=v: exit %d: %s", status, out)
					}
				}
				out, _ := h.runWith(callers, tt.args...)
				if !hasLine(out, tt.want) {
					t.Errorf("%s: want the line %s inside, got:\n%s", tt.name, tt.want, out)
				}
			})
		}
	})
}

func hasLine(out, line string) bool {
	sc := bufio.NewScanner(strings.NewReader(out))
	for sc.Scan() {
		if sc.Text() == line {
			return true
		}
	}
	return false
}

// 9. --bind accepted the store, the runtime dir, and the targets the
// sandbox mounts itself. Where the store goes in, root inside rewrites
// the base layer every session stands on.
func TestAttackBinds(t *testing.T) {
	forEachUser(t, func(t *testing.T, h *harness) {
		src := filepath.Join(h.dir, "src-bind")
		if err := os.Mkdir(src, 0o755); err != nil {
			t.Fatal(err)
		}
		link := filepath.Join(h.dir, "store-link")
		if err := os.Symlink(h.store, link); err != nil {
			t.Fatal(err)
		}
		h.ok("new", "--base", "bb", "warm")
		h.ok("run", "warm", "--", "true") // the runtime dir exists from here on
		layer := onlyLayer(t, h)
		before := treeDigest(t, layer)
		for i, bind := range []string{
			src + ":/proc", "/proc:/proc", src + ":/dev", "/dev:/dev", src + ":/dev/shm", src + ":/sys", "/sys:/sys",
			src + ":/proc/sys", src + ":/sys/fs/cgroup",
			h.store + ":/x", h.dir + ":/x", link + ":/x", h.store + "/layers:/x", h.runtimeDir() + ":/x",
		} {
			name := fmt.Sprintf("b%d", i)
			out, status := h.runWith(nil, "new", "--base", "bb", "--bind", bind, name)
			if status != 0 {
				continue
			}
			t.Errorf("new --bind %s was accepted:\n%s", bind, out)
			if strings.HasSuffix(bind, ":/x") {
				out, _ := h.runWith(nil, "run", name, "--", "sh", "-c",
					`find /x/ -path '*layers*' -name os-release -exec sh -c 'echo pwned > "$1"' _ {} \; ; echo done`)
				t.Logf("writing into the layers through it: %s", out)
			}
		}
		if after := treeDigest(t, layer); after != before {
			t.Errorf("the base layer was rewritten from inside a session")
		}
	})
}

// A look from inside: root inside is nobody on the host, and the filter
// and no_new_privs are in place.
func TestAttackLookFromInside(t *testing.T) {
	forEachSpawner(t, func(t *testing.T, h *harness) {
		h.ok("new", "--base", "bb", "s")
		out := h.ok("run", "s", "--", "sh", "-c", "id -u; cat /proc/self/uid_map; grep -E 'Cap|Seccomp|NoNewPrivs' /proc/self/status")
		t.Logf("inside:\n%s", out)
		lines := strings.Split(out, "\n")
		if lines[0] != "0" {
			t.Errorf("id -u inside: %q, want 0", lines[0])
		}
		for _, l := range lines[1:] {
			f := strings.Fields(l)
			if len(f) != 3 || strings.Contains(l, ":") {
				continue
			}
			inside, _ := strconv.ParseUint(f[0], 10, 32)
			outside, _ := strconv.ParseUint(f[1], 10, 32)
			count, _ := strconv.ParseUint(f[2], 10, 32)
			// The map is of the parent namespace's ids: for an ordinary
			// user that is the user's own namespace, for root the host's.
			if h.u.uid == 0 && inside == 0 && (outside < 524288 || count > 65536) {
				t.Errorf("root's session maps 0 inside to %d (%d ids), want a range of its own at 524288 or above: %q", outside, count, l)
			}
		}
	})
}

// The keeper, the machine's root, made each terminal through the
// session's /dev/ptmx, which the session may replace: with a symlink to
// a fifo (or any host path reached through the keeper's own fds), the
// keeper opened it; with one to a pty slave of the session's, it took
// that terminal as its own, and a ^\ on it killed PID 1. Both through a
// `run -t` after the swap: it must work, open nothing of the session's,
// and leave the keeper without a terminal.
func TestAttackPtmxSwap(t *testing.T) {
	forEachUser(t, func(t *testing.T, h *harness) {
		h.ok("new", "--base", "bb", "s")
		h.holdKeeper(t, "s")
		// A reader that reports an open of the fifo for writing.
		h.ok("run", "s", "--", "sh", "-c", `mkfifo /tmp/f && rm -f /dev/ptmx && ln -s /tmp/f /dev/ptmx &&
			(cat /tmp/f > /dev/null; echo opened > /tmp/opened) > /dev/null 2>&1 &`)
		s := h.onPty(t, 24, 80, h.command("run", "-t", "s", "--", "sh", "-c", "echo tty=$(tty)"))
		if !s.await("tty=/dev/pts/", 10*time.Second) {
			t.Fatalf("run -t after /dev/ptmx was swapped for a fifo; the screen shows:\n%s", s.text())
		}
		out := h.ok("run", "s", "--", "sh", "-c", "cat /tmp/opened 2>/dev/null; echo tty_nr=$(cut -d' ' -f7 /proc/1/stat)")
		if strings.Contains(out, "opened") {
			t.Errorf("the keeper opened the fifo the session put at /dev/ptmx")
		}
		if !strings.Contains(out, "tty_nr=0\n") {
			t.Errorf("the keeper has a controlling terminal: %q", out)
		}
		h.runWith(nil, "stop", "--grace", "100ms", "s")
	})
}

// Root's sessions now run as an id range of their own, through idmapped
// layers: an upper dir written before (ids as the session saw them, root
// as 0) must look the same from inside, and what is written now must land
// with the ids the session sees, not the range's.
func TestRootSessionKeepsItsIDs(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root: it is about root's sessions")
	}
	h := newHarness(t, rootUser)
	h.ok("new", "--base", "bb", "s")
	upper := filepath.Join(h.store, "sessions", "s", "upper")
	old := filepath.Join(upper, "old")
	if err := os.WriteFile(old, []byte("from before\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Chown(old, 1000, 1001); err != nil {
		t.Fatal(err)
	}
	out := h.ok("run", "s", "--", "sh", "-c", "stat -c '%u %g' /old /bin/busybox; id -u; echo new > /new; chown 7:8 /old")
	if want := "1000 1001\n0 0\n0\n"; out != want {
		t.Errorf("inside: %q, want %q", out, want)
	}
	for file, want := range map[string][2]uint32{"old": {7, 8}, "new": {0, 0}} {
		var st syscall.Stat_t
		if err := syscall.Stat(filepath.Join(upper, file), &st); err != nil {
			t.Fatal(err)
		}
		if st.Uid != want[0] || st.Gid != want[1] {
			t.Errorf("upper/%s is %d:%d on disk, want %d:%d (the ids the session sees)", file, st.Uid, st.Gid, want[0], want[1])
		}
	}
}

// holdKeeper keeps session name's keeper, and what is left behind in the
// session, alive until the test ends.
func (h *harness) holdKeeper(t *testing.T, name string) {
	holder := h.command("run", name, "--", "sleep", "1000")
	if err := holder.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = holder.Process.Kill(); _ = holder.Wait() })
}

// Anyone can make /tmp/incarnate-UID for someone else (for root, whom
// sudo users run as): incarnate refused it, safely, and then stopped
// working for that user. It must go on in a private directory of its
// own, say so once, and leave the planted one alone.
func TestAttackRuntimeDirTaken(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root, to make the runtime dir another user's")
	}
	forEachUser(t, func(t *testing.T, h *harness) {
		usual := h.runtimeDir()
		if _, err := os.Lstat(usual); err == nil {
			// Set aside what earlier tests left, and put it back after.
			aside := usual + ".aside"
			if err := os.Rename(usual, aside); err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { os.RemoveAll(usual); os.Rename(aside, usual) })
		} else {
			t.Cleanup(func() { os.RemoveAll(usual) })
		}
		other := 4242 // the attacker: not the harness user
		if err := os.Mkdir(usual, 0o777); err != nil {
			t.Fatal(err)
		}
		if err := os.Chown(usual, other, other); err != nil {
			t.Fatal(err)
		}
		said := ""
		for _, args := range [][]string{{"new", "--base", "bb", "s"}, {"run", "s", "--", "true"}, {"run", "s", "--", "true"}} {
			_, errOut, status := h.run(args...)
			if status != 0 {
				t.Fatalf("%v with %s taken: exit %d, %s", args, usual, status, errOut)
			}
			said += errOut
		}
		if n := strings.Count(said, "private runtime directory"); n != 1 {
			t.Errorf("the private runtime directory was told of %d times, want once: %q", n, said)
		}
		if out, _, _ := h.run("doctor"); !strings.Contains(out, "belongs to someone else") {
			t.Errorf("doctor says nothing of it:\n%s", out)
		}
		ents, _ := os.ReadDir(usual)
		var st syscall.Stat_t
		if err := syscall.Stat(usual, &st); err != nil || len(ents) != 0 || int(st.Uid) != other {
			t.Errorf("the planted %s was touched: %d entries, owner %d, %v", usual, len(ents), st.Uid, err)
		}
	})
}

// Keeper sockets were never unlinked and piled up in the runtime dir. A
// keeper removes its own as it goes, and a keeper's start sweeps those of
// keepers that died before they could (older than a minute, answering no
// one), leaving a fresh one, which may be a keeper's about to listen.
func TestKeeperSocketsGo(t *testing.T) {
	forEachUser(t, func(t *testing.T, h *harness) {
		h.ok("new", "--base", "bb", "s")
		stale := filepath.Join(h.runtimeDir(), "0000000000000000.sock")
		fresh := filepath.Join(h.runtimeDir(), "0000000000000001.sock")
		for _, p := range []string{stale, fresh} {
			bound(t, p, h.u)
		}
		old := time.Now().Add(-2 * time.Minute)
		if err := os.Chtimes(stale, old, old); err != nil {
			t.Fatal(err)
		}
		h.ok("run", "s", "--", "sleep", "0.3") // time for the sweep
		waitFor(t, "the session to be free", func() bool { return sessionFree(h, "s") })
		if _, err := os.Lstat(h.keeperSocket("s")); err == nil {
			t.Errorf("the keeper left its socket %s behind", h.keeperSocket("s"))
		}
		if _, err := os.Lstat(stale); err == nil {
			t.Errorf("the stale socket %s was not swept", stale)
		}
		if _, err := os.Lstat(fresh); err != nil {
			t.Errorf("a fresh socket was swept: %v", err)
		}
		os.Remove(fresh)
	})
}

// bound leaves a unix socket file at path that nobody listens on, owned
// by u, as a killed keeper leaves one.
func bound(t *testing.T, path string, u user) {
	t.Helper()
	fd, err := syscall.Socket(syscall.AF_UNIX, syscall.SOCK_SEQPACKET, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer syscall.Close(fd)
	if err := syscall.Bind(fd, &syscall.SockaddrUnix{Name: path}); err != nil {
		t.Fatal(err)
	}
	if err := os.Lchown(path, u.uid, u.gid); err != nil {
		t.Fatal(err)
	}
}

// diff quoted C0 bytes but printed C1 controls (U+009B is a CSI) and bidi
// overrides as they were; errors printed raw paths.
func TestDiffShowsControlsEscaped(t *testing.T) {
	h := newHarness(t, rootUser)
	h.ok("new", "--base", "bb", "s")
	upper := filepath.Join(h.store, "sessions", "s", "upper")
	for _, name := range []string{"csi\u009b2J", "rlo\u202etxt.exe", "osc\x1b]0;pwned\x07", "plain"} {
		if err := os.WriteFile(filepath.Join(upper, name), nil, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	out := h.ok("diff", "s")
	for _, raw := range []string{"\u009b", "\u202e", "\x1b", "\x07"} {
		if strings.Contains(out, raw) {
			t.Errorf("diff printed %q as it is:\n%q", raw, out)
		}
	}
	for _, want := range []string{`A "/csi\u009b2J"`, `A "/rlo\u202etxt.exe"`, "A /plain\n"} {
		if !strings.Contains(out, want) {
			t.Errorf("diff does not show %s:\n%s", want, out)
		}
	}
	_, errOut, _ := h.run("run", "--cwd", "/no\u009bwhere", "s", "--", "true")
	if strings.Contains(errOut, "\u009b") {
		t.Errorf("an error printed the path as it is: %q", errOut)
	}
}

// Another user plants a symlink in a sticky, world-writable directory
// (a /tmp) where root will export: the kernel's fs.protected_symlinks
// refuses to follow it for root, but export resolved the path itself and
// wrote through it to the victim. This machine ships with the protection
// off; the test turns it on while it runs, as distributions do.
func TestAttackExportThroughPlantedSymlink(t *testing.T) {
	const knob = "/proc/sys/fs/protected_symlinks"
	was, err := os.ReadFile(knob)
	if err != nil {
		t.Skipf("no %s: %v", knob, err)
	}
	if err := os.WriteFile(knob, []byte("1"), 0); err != nil {
		t.Skipf("cannot turn on %s: %v", knob, err)
	}
	t.Cleanup(func() { _ = os.WriteFile(knob, was, 0) })
	h := newHarness(t, rootUser)
	h.ok("new", "--base", "bb", "s")
	h.ok("run", "s", "--", "sh", "-c", "echo x > /root/x")
	sticky := filepath.Join(h.dir, "sticky")
	if err := os.Mkdir(sticky, 0o777); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(sticky, os.ModeSticky|0o777); err != nil {
		t.Fatal(err)
	}
	victim := filepath.Join(h.dir, "victim")
	if err := os.WriteFile(victim, []byte("precious\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	planted := filepath.Join(sticky, "out.tar")
	if err := os.Symlink(victim, planted); err != nil {
		t.Fatal(err)
	}
	if err := os.Lchown(planted, 4242, 4242); err != nil { // another user's
		t.Fatal(err)
	}
	_, errOut, status := h.run("export", "s", planted)
	if b, _ := os.ReadFile(victim); string(b) != "precious\n" {
		t.Errorf("export wrote through the planted symlink into the victim (exit %d, %q)", status, errOut)
	}
	if status == 0 {
		t.Errorf("export through a symlink the kernel refuses to follow succeeded")
	}
	// The caller's own symlink is followed, as by any program.
	own := filepath.Join(h.dir, "own.tar")
	if err := os.Symlink(filepath.Join(h.dir, "real.tar"), own); err != nil {
		t.Fatal(err)
	}
	h.ok("export", "s", own)
	if fi, err := os.Stat(filepath.Join(h.dir, "real.tar")); err != nil || fi.Size() == 0 {
		t.Errorf("export through the caller's own symlink: %v", err)
	}
}

// An ordinary user made a store directory with a symlink where the trash
// is (or tmp, or layers), and root's incarnate, pointed at it (sudo -E
// with the user's HOME, a store under /tmp, a CI workspace), followed it:
// everything in the victim directory was deleted. A store someone else
// owns or can write, or with a symlink where a directory of its own
// belongs, must be refused, and the victim left whole.
func TestAttackPlantedStore(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root, to plant as another user")
	}
	h := newHarness(t, rootUser)
	victim := filepath.Join(h.dir, "victim")
	for _, name := range []string{"trash", "tmp", "layers", "sessions"} {
		for _, tt := range []struct {
			how   string
			owner int
			mode  os.FileMode
		}{
			{"a user's store", 65534, 0o755},
			{"a world-writable store", 0, 0o777},
			{"root's store", 0, 0o700},
		} {
			t.Run(name+" in "+tt.how, func(t *testing.T) {
				if err := os.MkdirAll(filepath.Join(victim, "keep"), 0o755); err != nil {
					t.Fatal(err)
				}
				if err := os.WriteFile(filepath.Join(victim, "keep", "precious"), []byte("x"), 0o644); err != nil {
					t.Fatal(err)
				}
				store := filepath.Join(h.dir, "planted-"+name)
				os.RemoveAll(store)
				if err := os.Mkdir(store, tt.mode); err != nil {
					t.Fatal(err)
				}
				if err := os.Chmod(store, tt.mode); err != nil {
					t.Fatal(err)
				}
				if err := os.Symlink(victim, filepath.Join(store, name)); err != nil {
					t.Fatal(err)
				}
				if err := os.Lchown(filepath.Join(store, name), tt.owner, tt.owner); err != nil {
					t.Fatal(err)
				}
				if err := os.Chown(store, tt.owner, tt.owner); err != nil {
					t.Fatal(err)
				}
				for _, args := range [][]string{{"ls"}, {"base", "import", "x", h.base}, {"new", "--base", "bb", "s"}} {
					_, errOut, status := h.run(append(args, "--root", store)...)
					if status == 0 {
						t.Errorf("%v in %s with %s planted: went ahead", args, tt.how, name)
					} else if !strings.Contains(errOut, store) {
						t.Errorf("%v: the refusal does not name the store: %q", args, errOut)
					}
				}
				if _, err := os.Stat(filepath.Join(victim, "keep", "precious")); err != nil {
					t.Errorf("the victim behind %s lost its files: %v", name, err)
				}
				ents, _ := os.ReadDir(victim)
				if len(ents) != 1 {
					t.Errorf("the victim behind %s was written into: %d entries", name, len(ents))
				}
			})
		}
	}
}

// Sizes were unbounded: an 8 TiB sparse file that takes no disk exported
// as an 8 TiB tar entry, and a tiny compressed tar of zeros imported as
// hundreds of megabytes written. Export refuses such a file, saying why,
// and leaves nothing at its output; import writes zeros as holes.
func TestAttackSparseSizes(t *testing.T) {
	h := newHarness(t, rootUser)
	h.ok("new", "--base", "bb", "s")
	huge := filepath.Join(h.store, "sessions", "s", "upper", "root", "huge")
	if err := os.MkdirAll(filepath.Dir(huge), 0o700); err != nil {
		t.Fatal(err)
	}
	if f, err := os.Create(huge); err != nil || f.Truncate(8<<40) != nil || f.Close() != nil {
		t.Fatalf("an 8 TiB sparse file: %v", err)
	}
	out := filepath.Join(h.dir, "s.tar")
	_, errOut, status := h.run("export", "s", out)
	if status == 0 || !strings.Contains(errOut, "sparse") || !strings.Contains(errOut, "/root/huge") {
		t.Errorf("export of an 8 TiB sparse file: exit %d, %q; want a refusal that names it", status, errOut)
	}
	if ents, _ := filepath.Glob(filepath.Join(h.dir, "*s.tar*")); len(ents) != 0 {
		t.Errorf("export left %v behind", ents)
	}

	const zeros = 300 << 20
	var tb bytes.Buffer
	tw := tar.NewWriter(&tb)
	if err := tw.WriteHeader(&tar.Header{Name: "zeros", Mode: 0o644, Size: zeros, Typeflag: tar.TypeReg}); err != nil {
		t.Fatal(err)
	}
	if _, err := io.CopyN(tw, zeroReader{}, zeros); err != nil {
		t.Fatal(err)
	}
	tw.Close()
	src := filepath.Join(h.dir, "zeros.tar.gz")
	if err := os.WriteFile(src, testbase.Compress(t, "gzip", tb.Bytes()), 0o644); err != nil {
		t.Fatal(err)
	}
	h.ok("base", "import", "z", src)
	files, _ := filepath.Glob(filepath.Join(h.store, "layers", "*", "zeros"))
	if len(files) != 1 {
		t.Fatalf("no imported zeros: %v", files)
	}
	var st syscall.Stat_t
	if err := syscall.Stat(files[0], &st); err != nil {
		t.Fatal(err)
	}
	if st.Size != zeros || st.Blocks*512 > 1<<20 {
		t.Errorf("300 MiB of zeros imported as %d bytes taking %d on disk; want holes", st.Size, st.Blocks*512)
	}
}

type zeroReader struct{}

func (zeroReader) Read(p []byte) (int, error) { clear(p); return len(p), nil }

// Export of a running session followed symlinks the session swapped in:
// while the session looped `mv a a.d; ln -s /etc a`, root's export put
// the host's /etc/shadow into the tarball. Exports in a bounded loop
// while the session swaps; a single host byte in the tarball fails.
func TestAttackExportRace(t *testing.T) {
	h := newHarness(t, rootUser)
	h.ok("new", "--base", "bb", "s")
	h.ok("run", "s", "--", "sh", "-c", "mkdir /a && echo session-own > /a/shadow")
	swapper := h.command("run", "s", "--", "sh", "-c",
		"while :; do mv /a /a.d; ln -s /etc /a; usleep 2000; rm /a; mv /a.d /a; usleep 2000; done")
	if err := swapper.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() {
		_ = swapper.Process.Kill()
		_ = swapper.Wait()
		h.runWith(nil, "stop", "--grace", "100ms", "s")
	}()
	out := filepath.Join(h.dir, "race.tar")
	exported := 0
	for i, deadline := 0, time.Now().Add(20*time.Second); i < 200 && time.Now().Before(deadline); i++ {
		if _, _, status := h.run("export", "s", out); status != 0 {
			continue // the race made it fail: nothing was written
		}
		exported++
		f, err := os.Open(out)
		if err != nil {
			t.Fatal(err)
		}
		tr := tar.NewReader(f)
		for {
			hdr, err := tr.Next()
			if err != nil {
				break
			}
			if strings.HasSuffix(hdr.Name, "shadow") {
				b, _ := io.ReadAll(tr)
				if string(b) != "session-own\n" {
					f.Close()
					t.Fatalf("try %d: the tarball holds %s with a host file's content (%d bytes)", i, hdr.Name, len(b))
				}
			}
		}
		f.Close()
	}
	// An export that always fails would pass the loop above.
	if exported == 0 {
		t.Errorf("no export went through while the session swapped: the race was never run")
	}
	t.Logf("%d exports went through while the session swapped", exported)
}

// Two binds, one inside the other: through the outer one, a session
// swaps the inner one's source for a symlink to a host directory. The
// next start must not bind what the symlink points at.
func TestAttackNestedBindSwap(t *testing.T) {
	forEachUser(t, func(t *testing.T, h *harness) {
		outer := filepath.Join(h.dir, "share")
		inner := filepath.Join(outer, "sub")
		secret := filepath.Join(h.dir, "secret")
		for _, d := range []string{inner, secret} {
			if err := os.MkdirAll(d, 0o777); err != nil {
				t.Fatal(err)
			}
			if err := os.Chmod(d, 0o777); err != nil {
				t.Fatal(err)
			}
		}
		if err := os.Chmod(outer, 0o777); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(secret, "key"), []byte("host secret\n"), 0o644); err != nil {
			t.Fatal(err)
		}
		h.ok("new", "--base", "bb", "--bind", outer+":/share", "--bind", inner+":/sub", "s")
		h.ok("run", "s", "--", "sh", "-c", "rmdir /share/sub && ln -s "+secret+" /share/sub")
		out, errOut, status := h.run("run", "s", "--", "sh", "-c", "cat /sub/key; echo pwned > /sub/key")
		if strings.Contains(out, "host secret") {
			t.Errorf("the session read the symlink's target through the inner bind: %q", out)
		}
		if b, _ := os.ReadFile(filepath.Join(secret, "key")); string(b) != "host secret\n" {
			t.Errorf("the session wrote the symlink's target: %q", b)
		}
		if status == 0 || !strings.Contains(errOut, "symlink") {
			t.Errorf("start with a swapped bind source: status %d, stderr %q; want a refusal that names the symlink", status, errOut)
		}
	})
}

// What a session leaves running must not hold its callers: a process
// that keeps writing to the output after the command exited, and a
// spawner stopped from inside.
func TestAttackHangs(t *testing.T) {
	forEachUser(t, func(t *testing.T, h *harness) {
		h.ok("new", "--base", "bb", "s")
		bounded := func(what string, args ...string) (string, string, int) {
			t.Helper()
			cmd := h.command(args...)
			var out, errOut strings.Builder
			cmd.Stdout, cmd.Stderr = &out, &errOut
			if err := cmd.Start(); err != nil {
				t.Fatal(err)
			}
			done := make(chan error, 1)
			go func() { done <- cmd.Wait() }()
			select {
			case <-done:
			case <-time.After(60 * time.Second):
				_ = cmd.Process.Kill()
				<-done
				t.Errorf("%s: incarnate %v still waits after a minute", what, args)
			}
			return out.String(), errOut.String(), cmd.ProcessState.ExitCode()
		}
		out, _, status := bounded("a writer left behind", "run", "s", "--", "sh", "-c", "(while :; do echo x; sleep 0.05; done) & echo started")
		if status != 0 || !strings.Contains(out, "started\n") {
			t.Errorf("run with a writer left behind: status %d, output %.40q", status, out)
		}
		h.ok("stop", "s")
		// The spawner, stopped from inside: the session ends, and the
		// next run starts it again.
		bounded("a stopped spawner", "run", "s", "--", "sh", "-c",
			`for p in /proc/[0-9]*; do case "$(tr '\0' ' ' < $p/cmdline)" in "incarnate:spawner ") kill -STOP ${p#/proc/} && echo stopped;; esac; done; sleep 1`)
		if out, _, status := bounded("after a stopped spawner", "run", "s", "--", "echo", "again"); status != 0 || out != "again\n" {
			t.Errorf("run after the spawner was stopped: status %d, output %q", status, out)
		}
	})
}

// A host fd the caller left open (a shell's `exec 48</dir`) must not
// reach the session: Go's fork passes every fd not marked close-on-exec
// on to the keeper, and so to the spawner, whose /proc/PID/fd the
// session's root may read. The session looks through every fd it can
// see for the file the host directory holds.
func TestAttackInheritedFds(t *testing.T) {
	forEachSpawner(t, func(t *testing.T, h *harness) {
		h.ok("new", "--base", "bb", "s")
		dir := userDir(t, h, "host-dir")
		marker := fmt.Sprintf("inherited-%d", time.Now().UnixNano())
		if err := os.WriteFile(filepath.Join(dir, "marker"), []byte(marker+"\n"), 0o644); err != nil {
			t.Fatal(err)
		}
		d, err := os.Open(dir)
		if err != nil {
			t.Fatal(err)
		}
		defer d.Close()
		cmd := h.command("run", "s", "--", "sh", "-c", `for f in /proc/[0-9]*/fd/*; do cat "$f/marker" 2>/dev/null; done; echo looked`)
		cmd.ExtraFiles = make([]*os.File, 46)
		cmd.ExtraFiles[45] = d // fd 48 of incarnate
		out, _ := cmd.CombinedOutput()
		if strings.Contains(string(out), marker) {
			t.Errorf("the session read a host directory through an fd its caller had open:\n%s", out)
		}
		if !strings.Contains(string(out), "looked") {
			t.Errorf("the look did not run:\n%s", out)
		}
	})
}
