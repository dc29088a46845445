package sandbox

import (
	"bytes"
	"crypto/rand"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"unsafe"

	"golang.org/x/net/bpf"
	"golang.org/x/sys/unix"
)

// The confinement tests re-execute the test binary as a child that
// confines itself as the spawner does (on its locked thread, after
// no_new_privs, in the order the spawner calls them) and then makes one
// attack, printing what the kernel answered. The parent compares that
// with a control child that skips the confinement, so that every test is
// known to detect the attack it guards against.
const (
	confineChildEnv  = "INCARNATE_CONFINE_CHILD"  // "1" in the child
	confineStepsEnv  = "INCARNATE_CONFINE_STEPS"  // comma-separated: caps,keyring,landlock,seccomp
	confineNestedEnv = "INCARNATE_CONFINE_NESTED" // "1" for a nested session
	confineAttackEnv = "INCARNATE_CONFINE_ATTACK" // a key of confineAttacks
	confineArgEnv    = "INCARNATE_CONFINE_ARG"    // the attack's argument
)

func init() {
	if os.Getenv(confineChildEnv) == "1" {
		os.Exit(confineChild())
	}
}

// allSteps is the spawner's order.
const allSteps = "caps,keyring,landlock,seccomp"

func confineChild() int {
	// init runs on the main thread; keep this goroutine on it, so that
	// every step and the attack act on the one confined thread.
	runtime.LockOSThread()
	nested := os.Getenv(confineNestedEnv) == "1"
	attack := confineAttacks[os.Getenv(confineAttackEnv)]
	if attack == nil {
		fmt.Fprintf(os.Stderr, "unknown attack %q\n", os.Getenv(confineAttackEnv))
		return 2
	}
	arg := os.Getenv(confineArgEnv)
	if attack.setup != nil {
		if err := attack.setup(arg); err != nil {
			fmt.Fprintf(os.Stderr, "setup: %v\n", err)
			return 2
		}
	}
	if err := unix.Prctl(unix.PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0); err != nil {
		fmt.Fprintf(os.Stderr, "no_new_privs: %v\n", err)
		return 2
	}
	for _, step := range strings.Split(os.Getenv(confineStepsEnv), ",") {
		var err error
		switch step {
		case "":
		case "caps":
			err = dropBoundingCaps(nested)
		case "keyring":
			err = joinFreshKeyring()
		case "landlock":
			_, err = landlockScope()
		case "seccomp":
			err = installSeccomp(nested)
		default:
			err = fmt.Errorf("unknown step %q", step)
		}
		if err != nil {
			fmt.Fprintf(os.Stderr, "step %s: %v\n", step, err)
			return 2
		}
	}
	fmt.Printf("result=%s\n", attack.run(arg))
	return 0
}

// errnoResult is "ok" or the errno's name (EPERM), what attacks print.
func errnoResult(err error) string {
	if err == nil {
		return "ok"
	}
	var e syscall.Errno
	if errors.As(err, &e) {
		if name := unix.ErrnoName(e); name != "" {
			return name
		}
		return strconv.Itoa(int(e))
	}
	return strings.ReplaceAll(err.Error(), "\n", " ")
}

func errnoOf(_, _ uintptr, e syscall.Errno) error {
	if e != 0 {
		return e
	}
	return nil
}

// fdResult closes the fd a successful syscall returned.
func fdResult(fd, _ uintptr, e syscall.Errno) string {
	if e != 0 {
		return errnoResult(e)
	}
	unix.Close(int(fd))
	return "ok"
}

type confineAttack struct {
	setup func(arg string) error // before no_new_privs and the steps
	run   func(arg string) string
}

// sleeper is a process outside the child's Landlock domain, of the same
// credentials, for the signal attack; it dies with the child.
var sleeper *exec.Cmd

func startTrue(attr *syscall.SysProcAttr) string {
	cmd := exec.Command("/bin/true")
	cmd.SysProcAttr = attr
	return errnoResult(cmd.Run())
}

var confineAttacks = map[string]*confineAttack{
	// Namespaces. unshare(CLONE_NEWUSER) needs a single-threaded caller,
	// so it is made by the forked child of os/exec, before its execve.
	"unshare-user": {run: func(string) string {
		return startTrue(&syscall.SysProcAttr{Unshareflags: syscall.CLONE_NEWUSER})
	}},
	"clone-user": {run: func(string) string {
		return startTrue(&syscall.SysProcAttr{Cloneflags: syscall.CLONE_NEWUSER})
	}},
	"unshare-mnt": {run: func(string) string { return errnoResult(unix.Unshare(unix.CLONE_NEWNS)) }},
	"setns": {run: func(string) string {
		fd, err := unix.Open("/proc/thread-self/ns/uts", unix.O_RDONLY|unix.O_CLOEXEC, 0)
		if err != nil {
			return "open: " + errnoResult(err)
		}
		defer unix.Close(fd)
		return errnoResult(unix.Setns(fd, unix.CLONE_NEWUTS))
	}},
	// clone3 with no arguments: the kernel says EINVAL, the filter ENOSYS.
	"clone3": {run: func(string) string { return errnoResult(errnoOf(unix.Syscall(unix.SYS_CLONE3, 0, 0, 0))) }},
	"mount": {
		// A mount that gets through must stay in the child's namespace.
		setup: func(string) error { return unix.Mount("", "/", "", unix.MS_REC|unix.MS_PRIVATE, "") },
		run: func(dir string) string {
			return errnoResult(unix.Mount("incarnate-test", dir, "tmpfs", 0, "size=64k"))
		},
	},

	// Kernel attack surface.
	"io_uring_setup": {run: func(string) string {
		var params [120]byte // struct io_uring_params
		return fdResult(unix.Syscall(unix.SYS_IO_URING_SETUP, 1, uintptr(unsafe.Pointer(&params[0])), 0))
	}},
	"bpf": {run: func(string) string {
		// BPF_MAP_CREATE of a one-entry array map.
		attr := [5]uint32{unix.BPF_MAP_TYPE_ARRAY, 4, 4, 1, 0}
		return fdResult(unix.Syscall(unix.SYS_BPF, unix.BPF_MAP_CREATE, uintptr(unsafe.Pointer(&attr[0])), unsafe.Sizeof(attr)))
	}},
	"userfaultfd": {run: func(string) string {
		const uffdUserModeOnly = 1
		return fdResult(unix.Syscall(unix.SYS_USERFAULTFD, unix.O_CLOEXEC|uffdUserModeOnly, 0, 0))
	}},
	"perf_event_open": {run: func(string) string {
		attr := unix.PerfEventAttr{
			Type:   unix.PERF_TYPE_SOFTWARE,
			Config: unix.PERF_COUNT_SW_TASK_CLOCK,
			Size:   uint32(unsafe.Sizeof(unix.PerfEventAttr{})),
			Bits:   unix.PerfBitDisabled | unix.PerfBitExcludeKernel | unix.PerfBitExcludeHv,
		}
		fd, err := unix.PerfEventOpen(&attr, 0, -1, -1, unix.PERF_FLAG_FD_CLOEXEC)
		if err == nil {
			unix.Close(fd)
		}
		return errnoResult(err)
	}},
	// More segments than the kernel takes: EINVAL (or ENOSYS without
	// kexec) once past the permission checks, never a load.
	"kexec_load": {run: func(string) string {
		return errnoResult(errnoOf(unix.Syscall6(unix.SYS_KEXEC_LOAD, 0, 1000, 0, 0, 0, 0)))
	}},
	// An empty image: ENOEXEC (or ENOSYS without modules), never a load.
	"init_module": {run: func(string) string {
		args := []byte{0}
		return errnoResult(errnoOf(unix.Syscall(unix.SYS_INIT_MODULE, 0, 0, uintptr(unsafe.Pointer(&args[0])))))
	}},
	"open_by_handle_at": {run: func(string) string {
		h, _, err := unix.NameToHandleAt(unix.AT_FDCWD, "/", 0)
		if err != nil {
			return "name_to_handle_at: " + errnoResult(err)
		}
		root, err := unix.Open("/", unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
		if err != nil {
			return "open: " + errnoResult(err)
		}
		defer unix.Close(root)
		fd, err := unix.OpenByHandleAt(root, h, unix.O_RDONLY|unix.O_CLOEXEC)
		if err == nil {
			unix.Close(fd)
		}
		return errnoResult(err)
	}},

	// Keyrings. The thread keyring is the child's own, so a control run
	// leaves nothing behind.
	"add_key": {run: func(string) string {
		_, err := unix.AddKey("user", "incarnate-probe", []byte("x"), unix.KEY_SPEC_THREAD_KEYRING)
		return errnoResult(err)
	}},
	"request_key": {run: func(string) string {
		typ, desc := []byte("user\x00"), []byte("incarnate-none\x00")
		ring := unix.KEY_SPEC_THREAD_KEYRING
		// No callout (NULL), so the kernel never runs /sbin/request-key.
		return errnoResult(errnoOf(unix.Syscall6(unix.SYS_REQUEST_KEY, uintptr(unsafe.Pointer(&typ[0])),
			uintptr(unsafe.Pointer(&desc[0])), 0, uintptr(ring), 0, 0)))
	}},
	"keyctl-join-named": {run: func(string) string {
		_, err := unix.KeyctlJoinSessionKeyring("incarnate-probe")
		return errnoResult(err)
	}},
	"keyctl-join-fresh": {run: func(string) string { return errnoResult(joinFreshKeyring()) }},
	"keyring-read": {run: func(id string) string {
		n, err := strconv.Atoi(id)
		if err != nil {
			return err.Error()
		}
		buf := make([]byte, 256)
		m, err := unix.KeyctlBuffer(unix.KEYCTL_READ, n, buf, 0)
		if err != nil {
			return errnoResult(err)
		}
		return "payload:" + string(buf[:min(m, len(buf))])
	}},
	"keyring-search": {run: func(string) string {
		id, err := unix.KeyctlSearch(unix.KEY_SPEC_SESSION_KEYRING, "user", "incarnate-test", 0)
		if err != nil {
			return errnoResult(err)
		}
		return "found:" + strconv.Itoa(id)
	}},

	// Landlock scopes.
	"abstract-connect": {run: func(name string) string {
		fd, err := unix.Socket(unix.AF_UNIX, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
		if err != nil {
			return "socket: " + errnoResult(err)
		}
		defer unix.Close(fd)
		return errnoResult(unix.Connect(fd, &unix.SockaddrUnix{Name: "@" + name}))
	}},
	"signal": {
		setup: func(string) error {
			sleeper = exec.Command("/bin/sleep", "60")
			sleeper.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
			return sleeper.Start()
		},
		run: func(string) string { return errnoResult(unix.Kill(sleeper.Process.Pid, 0)) },
	},

	// What must keep working.
	"fork-exec": {run: func(string) string { return startTrue(nil) }},
	"threads": {run: func(string) string {
		// Goroutines that hold their threads make the runtime clone new
		// ones; a clone the filter refused would crash the runtime.
		const n = 8
		var started, release sync.WaitGroup
		started.Add(n)
		release.Add(1)
		for range n {
			go func() {
				runtime.LockOSThread()
				started.Done()
				release.Wait()
			}()
		}
		started.Wait()
		tasks, err := os.ReadDir("/proc/self/task")
		release.Done()
		if err != nil {
			return err.Error()
		}
		if len(tasks) <= n {
			return fmt.Sprintf("only %d threads", len(tasks))
		}
		return "ok"
	}},
	// What a process the spawner forks and executes holds (its caps are
	// recomputed by execve, from the bounding set for root), and what the
	// confined thread itself, and so a fork without execve, holds.
	"caps-exec": {run: func(string) string {
		out, err := exec.Command("/bin/cat", "/proc/self/status").Output()
		if err != nil {
			return errnoResult(err)
		}
		return capsLines(out)
	}},
	"caps-self": {run: func(string) string {
		out, err := os.ReadFile("/proc/thread-self/status")
		if err != nil {
			return errnoResult(err)
		}
		return capsLines(out)
	}},
}

// capsLines is the Cap* lines of a status file: "CapInh:0,CapPrm:1ff,...".
func capsLines(status []byte) string {
	var caps []string
	for line := range strings.Lines(string(status)) {
		if strings.HasPrefix(line, "Cap") {
			caps = append(caps, strings.Join(strings.Fields(line), ""))
		}
	}
	return strings.Join(caps, ",")
}

// confineRun is one child: the confinement steps it takes and its attack.
type confineRun struct {
	steps  string
	nested bool
	asRoot bool // host root in a mount namespace of its own, not in a user namespace
	attack string
	arg    string
}

// childUID is where the child's user namespace maps its uid 0 when the
// test runs as root: a range no real user has, as a session's would be.
const childUID = 700000

func (r confineRun) String() string {
	mode := "userns"
	if r.asRoot {
		mode = "root"
	}
	return fmt.Sprintf("%s [steps %q, nested %v, %s]", r.attack, r.steps, r.nested, mode)
}

// result runs the child and returns what its attack printed.
func (r confineRun) result(t *testing.T) string {
	t.Helper()
	got, err := r.try()
	if err != nil {
		t.Fatalf("%v: %v", r, err)
	}
	return got
}

// try is result for goroutines other than the test's.
func (r confineRun) try() (string, error) {
	// /proc/self/exe, not the path: the test binary's directory is not
	// searchable by the child's unmapped host uid, and the magic link
	// needs no search permission.
	cmd := exec.Command("/proc/self/exe")
	cmd.Env = append(os.Environ(),
		confineChildEnv+"=1",
		confineStepsEnv+"="+r.steps,
		confineAttackEnv+"="+r.attack,
		confineArgEnv+"="+r.arg,
	)
	if r.nested {
		cmd.Env = append(cmd.Env, confineNestedEnv+"=1")
	}
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if r.asRoot {
		cmd.SysProcAttr.Cloneflags = syscall.CLONE_NEWNS
	} else {
		uid, gid, size := childUID, childUID, 65536
		if os.Geteuid() != 0 {
			uid, gid, size = os.Geteuid(), os.Getegid(), 1
		}
		cmd.SysProcAttr.Cloneflags = syscall.CLONE_NEWUSER | syscall.CLONE_NEWNS | syscall.CLONE_NEWUTS
		cmd.SysProcAttr.UidMappings = []syscall.SysProcIDMap{{ContainerID: 0, HostID: uid, Size: size}}
		cmd.SysProcAttr.GidMappings = []syscall.SysProcIDMap{{ContainerID: 0, HostID: gid, Size: size}}
		cmd.SysProcAttr.Credential = &syscall.Credential{Uid: 0, Gid: 0}
	}
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		return "", fmt.Errorf("child: %v\nstdout:\n%s\nstderr:\n%s", err, stdout.String(), stderr.String())
	}
	for line := range strings.Lines(stdout.String()) {
		if v, ok := strings.CutPrefix(strings.TrimSpace(line), "result="); ok {
			return v, nil
		}
	}
	return "", fmt.Errorf("child printed no result\nstdout:\n%s\nstderr:\n%s", stdout.String(), stderr.String())
}

func requireUserns(t *testing.T) {
	t.Helper()
	if _, err := os.Stat("/proc/self/ns/user"); err != nil {
		t.Skip("kernel without user namespaces")
	}
}

// controlAsRoot is where control and filter-only runs happen: as host
// root where the test is root, so that the kernel itself refuses nothing
// and only the filter can, else in a user namespace.
func controlAsRoot() bool { return os.Geteuid() == 0 }

// mountTarget is an empty directory the child's uid can reach.
func mountTarget(t *testing.T) string {
	dir := t.TempDir()
	for _, d := range []string{filepath.Dir(dir), dir} {
		if err := os.Chmod(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

func TestSeccompDenies(t *testing.T) {
	requireUserns(t)
	if err := SeccompSupported(); err != nil {
		t.Skipf("seccomp: %v", err)
	}
	target := mountTarget(t)
	tests := []struct {
		attack string
		arg    string
		want   string // what the filter answers
	}{
		{attack: "unshare-user", want: "EPERM"},
		{attack: "clone-user", want: "EPERM"},
		{attack: "unshare-mnt", want: "EPERM"},
		{attack: "setns", want: "EPERM"},
		{attack: "clone3", want: "ENOSYS"},
		{attack: "mount", arg: target, want: "EPERM"},
		{attack: "io_uring_setup", want: "EPERM"},
		{attack: "bpf", want: "EPERM"},
		{attack: "userfaultfd", want: "EPERM"},
		{attack: "perf_event_open", want: "EPERM"},
		{attack: "kexec_load", want: "EPERM"},
		{attack: "init_module", want: "EPERM"},
		{attack: "open_by_handle_at", want: "EPERM"},
		{attack: "add_key", want: "ENOSYS"},
		{attack: "request_key", want: "ENOSYS"},
		{attack: "keyctl-join-named", want: "ENOSYS"},
	}
	for _, tt := range tests {
		t.Run(tt.attack, func(t *testing.T) {
			base := confineRun{attack: tt.attack, arg: tt.arg, asRoot: controlAsRoot()}
			control := base.result(t)
			if control == tt.want {
				t.Logf("%v: the kernel answers %s already; the runs below cannot tell the filter from it", base, control)
			}
			filtered := base
			filtered.steps = "seccomp"
			if got := filtered.result(t); got != tt.want {
				t.Errorf("%v: got %s, want %s (without the filter: %s)", filtered, got, tt.want, control)
			}
			full := confineRun{attack: tt.attack, arg: tt.arg, steps: allSteps}
			got := full.result(t)
			if got != tt.want {
				t.Errorf("%v: got %s, want %s (without the filter: %s)", full, got, tt.want, control)
			}
			t.Logf("without confinement %s, confined %s", control, got)
		})
	}
}

// TestSeccompNested is the other side: a nested session may make
// namespaces and mounts, as podman and bwrap inside it need.
func TestSeccompNested(t *testing.T) {
	requireUserns(t)
	target := mountTarget(t)
	tests := []struct {
		attack, arg, want string
	}{
		{attack: "unshare-user", want: "ok"},
		{attack: "clone-user", want: "ok"},
		{attack: "unshare-mnt", want: "ok"},
		{attack: "mount", arg: target, want: "ok"},
		{attack: "clone3", want: "EINVAL"}, // the kernel's answer to no arguments
		{attack: "bpf", want: "EPERM"},     // the rest of the policy holds
		{attack: "keyctl-join-named", want: "ENOSYS"},
	}
	for _, tt := range tests {
		t.Run(tt.attack, func(t *testing.T) {
			r := confineRun{attack: tt.attack, arg: tt.arg, steps: allSteps, nested: true}
			if got := r.result(t); got != tt.want {
				t.Errorf("%v: got %s, want %s", r, got, tt.want)
			}
		})
	}
}

// TestConfineStillWorks: what a session does all the time passes.
func TestConfineStillWorks(t *testing.T) {
	requireUserns(t)
	for _, nested := range []bool{false, true} {
		for _, attack := range []string{"fork-exec", "threads", "keyctl-join-fresh"} {
			r := confineRun{attack: attack, steps: allSteps, nested: nested}
			if got := r.result(t); got != "ok" {
				t.Errorf("%v: got %s, want ok", r, got)
			}
		}
	}
}

// TestKeyringHidden: a key in the caller's session keyring, which the
// child would possess by inheritance, is out of the confined child's
// reach.
func TestKeyringHidden(t *testing.T) {
	requireUserns(t)
	const payload = "incarnate-s3cret"
	type outcome struct {
		run confineRun
		got string
		err error
	}
	var outcomes []outcome
	done := make(chan error)
	go func() {
		// Never unlocked: the thread's session keyring, and the key, go
		// when the goroutine ends and takes the thread with it.
		runtime.LockOSThread()
		name := make([]byte, 8)
		rand.Read(name)
		if _, err := unix.KeyctlJoinSessionKeyring("incarnate-test-" + hex.EncodeToString(name)); err != nil {
			done <- fmt.Errorf("join a named session keyring: %w", err)
			return
		}
		id, err := unix.AddKey("user", "incarnate-test", []byte(payload), unix.KEY_SPEC_SESSION_KEYRING)
		if err != nil {
			done <- fmt.Errorf("add_key: %w", err)
			return
		}
		defer unix.KeyctlInt(unix.KEYCTL_INVALIDATE, id, 0, 0, 0)
		// Forks from this thread: the children inherit its keyring.
		for _, steps := range []string{"", "keyring", allSteps} {
			for _, attack := range []string{"keyring-read", "keyring-search"} {
				r := confineRun{attack: attack, arg: strconv.Itoa(id), steps: steps}
				got, err := r.try()
				outcomes = append(outcomes, outcome{r, got, err})
			}
		}
		done <- nil
	}()
	if err := <-done; err != nil {
		if errors.Is(err, unix.ENOSYS) {
			t.Skipf("kernel without keyrings: %v", err)
		}
		t.Fatal(err)
	}
	for _, o := range outcomes {
		if o.err != nil {
			t.Errorf("%v: %v", o.run, o.err)
			continue
		}
		leaked := o.got == "payload:"+payload || strings.HasPrefix(o.got, "found:")
		switch {
		case o.run.steps == "" && !leaked:
			t.Errorf("control %v: got %s, want the key: the test cannot see the attack", o.run, o.got)
		case o.run.steps != "" && leaked:
			t.Errorf("%v: got %s, the session reached the caller's key", o.run, o.got)
		}
	}
}

func TestLandlockScope(t *testing.T) {
	requireUserns(t)
	if abi := LandlockABI(); abi < 6 {
		t.Skipf("Landlock ABI %d: scoping needs ABI 6 (Linux 6.12)", abi)
	}
	name := make([]byte, 8)
	rand.Read(name)
	sock := "incarnate-test-" + hex.EncodeToString(name)
	l, err := net.Listen("unix", "@"+sock)
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	for _, attack := range []string{"abstract-connect", "signal"} {
		t.Run(attack, func(t *testing.T) {
			control := confineRun{attack: attack, arg: sock}
			if got := control.result(t); got != "ok" {
				t.Fatalf("control %v: got %s, want ok: the test cannot see the attack", control, got)
			}
			for _, steps := range []string{"landlock", allSteps} {
				r := confineRun{attack: attack, arg: sock, steps: steps}
				if got := r.result(t); got != "EPERM" {
					t.Errorf("%v: got %s, want EPERM", r, got)
				}
			}
		})
	}
}

// TestCapsBounding reads what the confined thread, and a process it
// forks and executes, hold.
func TestCapsBounding(t *testing.T) {
	requireUserns(t)
	const sysAdmin = 1 << unix.CAP_SYS_ADMIN
	caps := func(r confineRun) map[string]uint64 {
		m := map[string]uint64{}
		for _, kv := range strings.Split(r.result(t), ",") {
			k, v, _ := strings.Cut(kv, ":")
			n, err := strconv.ParseUint(v, 16, 64)
			if err != nil {
				t.Fatalf("%v: %q: %v", r, kv, err)
			}
			m[k] = n
		}
		return m
	}
	last, err := lastCap()
	if err != nil {
		t.Fatal(err)
	}
	known := uint64(1)<<(last+1) - 1
	for _, attack := range []string{"caps-self", "caps-exec"} {
		control := caps(confineRun{attack: attack})
		for _, set := range []string{"CapBnd", "CapPrm", "CapEff"} {
			if control[set]&sysAdmin == 0 {
				t.Fatalf("control %s: %s %x lacks CAP_SYS_ADMIN: the test cannot see the drop", attack, set, control[set])
			}
		}
		for _, nested := range []bool{false, true} {
			want := keptCaps(nested) & known
			for _, steps := range []string{"caps", allSteps} {
				r := confineRun{attack: attack, steps: steps, nested: nested}
				got := caps(r)
				for _, set := range []string{"CapBnd", "CapPrm", "CapEff"} {
					if has := got[set]&sysAdmin != 0; has != nested {
						t.Errorf("%v: %s %x: CAP_SYS_ADMIN %v, want %v", r, set, got[set], has, nested)
					}
					if got[set] != want {
						t.Errorf("%v: %s %x, want %x", r, set, got[set], want)
					}
				}
				if got["CapInh"]&^want != 0 || got["CapAmb"] != 0 {
					t.Errorf("%v: CapInh %x CapAmb %x, want within %x and 0", r, got["CapInh"], got["CapAmb"], want)
				}
			}
		}
	}
}

func TestSeccompSupported(t *testing.T) {
	if err := SeccompSupported(); err != nil {
		t.Errorf("SeccompSupported() = %v on a kernel that runs the other seccomp tests", err)
	}
}

// TestSeccompPolicyBPF runs the assembled filter in a BPF interpreter on
// calls a test cannot make for real: other ABIs, and arguments the
// kernel would act on.
func TestSeccompPolicyBPF(t *testing.T) {
	numbers := syscallNumbers()
	allow := uint32(unix.SECCOMP_RET_ALLOW)
	errno := func(e syscall.Errno) uint32 { return uint32(unix.SECCOMP_RET_ERRNO) | uint32(e) }
	nr := func(name string) uint32 { return numbers[name] }
	type call struct {
		arch uint32
		nr   uint32
		args [6]uint64
	}
	nat := func(name string, args ...uint64) call {
		c := call{arch: auditArchNative, nr: nr(name)}
		copy(c.args[:], args)
		return c
	}
	foreign := uint32(auditArchForeign)
	tests := []struct {
		name   string
		nested bool
		call   call
		want   uint32
	}{
		{name: "getpid", call: nat("getpid"), want: allow},
		{name: "ptrace", call: nat("ptrace"), want: allow},
		{name: "foreign arch getpid", call: call{arch: foreign, nr: 20}, want: errno(seccompForeignArchErrno)},
		{name: "foreign arch, nested", nested: true, call: call{arch: foreign, nr: 20}, want: errno(seccompForeignArchErrno)},
		{name: "keyctl join NULL", call: nat("keyctl", keyctlJoinSessionKeyring, 0), want: allow},
		{name: "keyctl join named", call: nat("keyctl", keyctlJoinSessionKeyring, 0x7fff0000), want: errno(syscall.ENOSYS)},
		{name: "keyctl read", call: nat("keyctl", unix.KEYCTL_READ, 0), want: errno(syscall.ENOSYS)},
		{name: "keyctl join, high bits", call: nat("keyctl", 1<<32|keyctlJoinSessionKeyring, 0), want: errno(syscall.ENOSYS)},
		{name: "keyctl read, nested", nested: true, call: nat("keyctl", unix.KEYCTL_READ, 0), want: errno(syscall.ENOSYS)},
		{name: "clone thread", call: nat("clone", unix.CLONE_VM|unix.CLONE_FS|unix.CLONE_FILES|unix.CLONE_SIGHAND|unix.CLONE_THREAD|unix.CLONE_SYSVSEM), want: allow},
		{name: "clone vfork", call: nat("clone", unix.CLONE_VM|unix.CLONE_VFORK|uint64(unix.SIGCHLD)), want: allow},
		{name: "clone newuser", call: nat("clone", unix.CLONE_NEWUSER|uint64(unix.SIGCHLD)), want: errno(syscall.EPERM)},
		{name: "clone newnet", call: nat("clone", unix.CLONE_NEWNET), want: errno(syscall.EPERM)},
		{name: "clone newuser, nested", nested: true, call: nat("clone", unix.CLONE_NEWUSER), want: allow},
		{name: "clone3", call: nat("clone3"), want: errno(syscall.ENOSYS)},
		{name: "clone3, nested", nested: true, call: nat("clone3"), want: allow},
		{name: "mount", call: nat("mount"), want: errno(syscall.EPERM)},
		{name: "mount, nested", nested: true, call: nat("mount"), want: allow},
		{name: "io_uring_enter, nested", nested: true, call: nat("io_uring_enter"), want: errno(syscall.EPERM)},
	}
	if x32Bit != 0 {
		tests = append(tests, struct {
			name   string
			nested bool
			call   call
			want   uint32
		}{name: "x32 getpid", call: call{arch: auditArchNative, nr: 39 | x32Bit}, want: errno(syscall.ENOSYS)})
	}
	for _, tt := range tests {
		prog, err := seccompProgram(tt.nested)
		if err != nil {
			t.Fatal(err)
		}
		vm, err := bpf.NewVM(prog)
		if err != nil {
			t.Fatal(err)
		}
		// struct seccomp_data, in the native byte order the kernel loads
		// words in; the interpreter loads them big-endian, so each word
		// is stored big-endian, in the place the native order puts it.
		var in [64]byte
		binary.BigEndian.PutUint32(in[0:], tt.call.nr)
		binary.BigEndian.PutUint32(in[4:], tt.call.arch)
		for i, a := range tt.call.args {
			lo, hi := 16+8*i, 16+8*i+4
			if !littleEndian() {
				lo, hi = hi, lo
			}
			binary.BigEndian.PutUint32(in[lo:], uint32(a))
			binary.BigEndian.PutUint32(in[hi:], uint32(a>>32))
		}
		got, err := vm.Run(in[:])
		if err != nil {
			t.Fatal(err)
		}
		if uint32(got) != tt.want {
			t.Errorf("%s: got %#x, want %#x", tt.name, uint32(got), tt.want)
		}
	}
}

func littleEndian() bool {
	x := uint16(1)
	return *(*byte)(unsafe.Pointer(&x)) == 1
}
