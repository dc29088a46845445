// Command probe is what the attack tests run inside a session, where only
// a static busybox is: the syscalls a shell cannot make (keyctl, abstract
// unix sockets, SOCK_SEQPACKET, io_uring, bpf, clone3 ...). Each mode
// prints one line per attempt, "what: ok" or "what: <errno>", and leaves
// the verdict to the test, which checks the host as well.
//
//	probe true                       exit 0 (the child of a clone probe)
//	probe euid                       print the effective uid
//	probe syscalls                   try the calls a sandbox should refuse
//	probe keeper SOCK CMD            ask a keeper to run sh -c CMD (once
//	                                 SOCK appears)
//	probe abstract NAME              connect to @NAME and print what it says
//	probe keyring-host DESC SECRET ARGV...
//	                                 join a fresh named session keyring, add
//	                                 a user key, run ARGV in it, then say
//	                                 whether the key is intact
//	probe keyring-steal DESC         read and clear the session keyring
//	probe cgroup NAME                mount the cgroup hierarchies, directly
//	                                 and in new mount and cgroup namespaces,
//	                                 and kill or freeze the cgroups NAME-*
package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"syscall"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"
)

func main() {
	if len(os.Args) < 2 {
		fmt.Fprintln(os.Stderr, "usage: probe MODE ARGS...")
		os.Exit(2)
	}
	args := os.Args[2:]
	switch os.Args[1] {
	case "true":
	case "euid":
		fmt.Println(os.Geteuid())
	case "syscalls":
		syscalls()
	case "keeper":
		keeper(args[0], args[1])
	case "abstract":
		abstract(args[0])
	case "keyring-host":
		keyringHost(args[0], args[1], args[2:])
	case "keyring-steal":
		keyringSteal(args[0])
	case "cgroup":
		cgroupAttack(args[0])
	case "cgroup-child":
		cgroupHit(args[0], args[1])
	default:
		fmt.Fprintf(os.Stderr, "probe: unknown mode %q\n", os.Args[1])
		os.Exit(2)
	}
}

func report(what string, err error) {
	if err == nil {
		fmt.Printf("%s: ok\n", what)
		return
	}
	var errno syscall.Errno
	if errors.As(err, &errno) {
		fmt.Printf("%s: %s\n", what, unix.ErrnoName(errno))
		return
	}
	fmt.Printf("%s: %v\n", what, err)
}

// syscalls tries each call a default seccomp filter refuses. Namespace
// calls run in a forked child: the kernel refuses CLONE_NEWUSER and
// CLONE_NEWNS to a multi-threaded process, which every Go program is.
func syscalls() {
	self, _ := os.Executable()
	fork := func(attr *syscall.SysProcAttr) error {
		pid, err := syscall.ForkExec(self, []string{self, "true"}, &syscall.ProcAttr{Sys: attr})
		if err != nil {
			return err
		}
		var ws syscall.WaitStatus
		if _, err := syscall.Wait4(pid, &ws, 0, nil); err != nil {
			return err
		}
		if ws.ExitStatus() != 0 {
			return fmt.Errorf("child exited %v", ws)
		}
		return nil
	}
	report("clone-newuser", fork(&syscall.SysProcAttr{Cloneflags: unix.CLONE_NEWUSER}))
	report("unshare-newuser", fork(&syscall.SysProcAttr{Unshareflags: unix.CLONE_NEWUSER}))
	report("unshare-newns", fork(&syscall.SysProcAttr{Unshareflags: unix.CLONE_NEWNS}))
	report("unshare-newnet", fork(&syscall.SysProcAttr{Unshareflags: unix.CLONE_NEWNET}))

	// clone3 with no arguments: the kernel answers EINVAL, a filter that
	// sends libc back to clone answers ENOSYS. Nothing is ever cloned.
	_, _, e := unix.Syscall(unix.SYS_CLONE3, 0, 0, 0)
	report("clone3", errnoErr(e))

	var params [120]byte // struct io_uring_params
	fd, _, e := unix.Syscall(unix.SYS_IO_URING_SETUP, 1, uintptr(unsafe.Pointer(&params[0])), 0)
	report("io_uring_setup", closeFd(fd, e))

	// BPF_MAP_CREATE of a one-entry array.
	attr := [5]uint32{2 /* BPF_MAP_TYPE_ARRAY */, 4, 4, 1, 0}
	fd, _, e = unix.Syscall(unix.SYS_BPF, 0 /* BPF_MAP_CREATE */, uintptr(unsafe.Pointer(&attr[0])), unsafe.Sizeof(attr))
	report("bpf", closeFd(fd, e))

	fd, _, e = unix.Syscall(unix.SYS_USERFAULTFD, unix.O_CLOEXEC|1 /* UFFD_USER_MODE_ONLY */, 0, 0)
	report("userfaultfd", closeFd(fd, e))

	pe := unix.PerfEventAttr{Type: unix.PERF_TYPE_SOFTWARE, Config: unix.PERF_COUNT_SW_CPU_CLOCK,
		Bits: unix.PerfBitDisabled | unix.PerfBitExcludeKernel | unix.PerfBitExcludeHv}
	pe.Size = uint32(unsafe.Sizeof(pe))
	pfd, err := unix.PerfEventOpen(&pe, 0, -1, -1, unix.PERF_FLAG_FD_CLOEXEC)
	if err == nil {
		unix.Close(pfd)
	}
	report("perf_event_open", err)

	_, _, e = unix.Syscall6(unix.SYS_KEXEC_LOAD, 0, 0, 0, 0, 0, 0)
	report("kexec_load", errnoErr(e))
	noParams := []byte{0}
	_, _, e = unix.Syscall(unix.SYS_INIT_MODULE, 0, 0, uintptr(unsafe.Pointer(&noParams[0])))
	report("init_module", errnoErr(e))

	report("open_by_handle_at", openByHandle())

	_, err = unix.KeyctlGetKeyringID(unix.KEY_SPEC_SESSION_KEYRING, true)
	report("keyctl", err)

	mfd, err := unix.Fsopen("tmpfs", unix.FSOPEN_CLOEXEC)
	if err == nil {
		unix.Close(mfd)
	}
	report("fsopen", err)
	dir, _ := os.MkdirTemp("", "probe-mnt-")
	err = unix.Mount("none", dir, "tmpfs", 0, "")
	if err == nil {
		_ = unix.Unmount(dir, unix.MNT_DETACH)
	}
	os.Remove(dir)
	report("mount", err)

	status, _ := os.ReadFile("/proc/self/status")
	for _, l := range strings.Split(string(status), "\n") {
		if strings.HasPrefix(l, "Seccomp:") || strings.HasPrefix(l, "NoNewPrivs:") || strings.HasPrefix(l, "Cap") {
			fmt.Println(strings.Join(strings.Fields(l), " "))
		}
	}
}

func errnoErr(e syscall.Errno) error {
	if e != 0 {
		return e
	}
	return nil
}

func closeFd(fd uintptr, e syscall.Errno) error {
	if e != 0 {
		return e
	}
	unix.Close(int(fd))
	return nil
}

// openByHandle opens / again by its handle, the "shocker" route past the
// mount tree.
func openByHandle() error {
	h, _, err := unix.NameToHandleAt(unix.AT_FDCWD, "/", 0)
	if err != nil {
		// Without a handle there is still the call itself to try.
		h = unix.NewFileHandle(1, make([]byte, 8))
	}
	mfd, err := unix.Open("/", unix.O_RDONLY|unix.O_DIRECTORY, 0)
	if err != nil {
		return err
	}
	defer unix.Close(mfd)
	fd, err := unix.OpenByHandleAt(mfd, h, unix.O_RDONLY)
	if err == nil {
		unix.Close(fd)
	}
	return err
}

// keeper connects to a keeper's socket and asks it, in the current and in
// the earlier wire format, to run sh -c cmd, passing its own streams.
func keeper(sock, cmd string) {
	// The test may put the socket in place only once this runs.
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(10 * time.Millisecond) {
		if _, err := os.Lstat(sock); err == nil {
			break
		}
	}
	argv := []string{"/bin/sh", "-c", cmd}
	requests := map[string]any{
		"current": map[string]any{"spawn": map[string]any{"argv": argv, "umask": 0o22}},
		"earlier": map[string]any{"spawn": map[string]any{"spec": map[string]any{
			"root": []any{}, "process": []any{}, "argv": argv, "env": []string{"PATH=/bin"}}}},
	}
	// The earlier format first: a keeper of that time, which took the
	// process setup from the request, dies of a request without it.
	for _, format := range []string{"earlier", "current"} {
		report("keeper-"+format, askKeeper(sock, requests[format]))
	}
}

func askKeeper(sock string, req any) error {
	fd, err := unix.Socket(unix.AF_UNIX, unix.SOCK_SEQPACKET|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return err
	}
	defer unix.Close(fd)
	tv := unix.Timeval{Sec: 5}
	_ = unix.SetsockoptTimeval(fd, unix.SOL_SOCKET, unix.SO_RCVTIMEO, &tv)
	if err := unix.Connect(fd, &unix.SockaddrUnix{Name: sock}); err != nil {
		return fmt.Errorf("connect: %w", err)
	}
	b, _ := json.Marshal(req)
	if err := unix.Sendmsg(fd, b, unix.UnixRights(0, 1, 2), nil, 0); err != nil {
		return fmt.Errorf("send: %w", err)
	}
	var replies []string
	for range 2 {
		buf := make([]byte, 65536)
		oob := make([]byte, 256)
		n, _, _, _, err := unix.Recvmsg(fd, buf, oob, 0)
		if err != nil || n == 0 {
			break
		}
		replies = append(replies, string(buf[:n]))
		if !bytes.Contains(buf[:n], []byte(`"started"`)) {
			break
		}
	}
	if len(replies) == 0 {
		return errors.New("no reply")
	}
	return fmt.Errorf("replied %s", strings.Join(replies, " "))
}

// abstract connects to the abstract unix socket @name and prints what the
// other end sends.
func abstract(name string) {
	fd, err := unix.Socket(unix.AF_UNIX, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		report("socket", err)
		return
	}
	defer unix.Close(fd)
	err = unix.Connect(fd, &unix.SockaddrUnix{Name: "@" + name})
	report("connect", err)
	if err != nil {
		return
	}
	tv := unix.Timeval{Sec: 5}
	_ = unix.SetsockoptTimeval(fd, unix.SOL_SOCKET, unix.SO_RCVTIMEO, &tv)
	buf := make([]byte, 256)
	n, err := unix.Read(fd, buf)
	if err != nil {
		report("read", err)
		return
	}
	fmt.Printf("received: %q\n", buf[:n])
}

// keyringHost plays the user's login session: a session keyring with a
// secret in it, which the command it runs inherits. The thread is locked
// so the keyring joined is the one the fork inherits.
func keyringHost(desc, secret string, argv []string) {
	runtime.LockOSThread()
	if _, err := unix.KeyctlJoinSessionKeyring("incarnate-attack-" + desc); err != nil {
		fmt.Fprintf(os.Stderr, "join session keyring: %v\n", err)
		os.Exit(3)
	}
	id, err := unix.AddKey("user", desc, []byte(secret), unix.KEY_SPEC_SESSION_KEYRING)
	if err != nil {
		fmt.Fprintf(os.Stderr, "add_key: %v\n", err)
		os.Exit(3)
	}
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.Stdin, cmd.Stdout, cmd.Stderr = os.Stdin, os.Stdout, os.Stderr
	runErr := cmd.Run()
	fmt.Printf("host-run: %v\n", runErr)
	buf := make([]byte, 256)
	n, err := unix.KeyctlBuffer(unix.KEYCTL_READ, id, buf, 0)
	switch {
	case err != nil:
		fmt.Printf("host-key: %v\n", err)
	case string(buf[:n]) != secret:
		fmt.Printf("host-key: payload changed to %q\n", buf[:n])
	default:
		if found, err := unix.KeyctlSearch(unix.KEY_SPEC_SESSION_KEYRING, "user", desc, 0); err != nil || found != id {
			fmt.Printf("host-key: no longer in the session keyring (%d, %v)\n", found, err)
		} else {
			fmt.Println("host-key: intact")
		}
	}
}

// keyringSteal reads every key in the session keyring it was given,
// searches for desc, and clears the keyring.
func keyringSteal(desc string) {
	sid, err := unix.KeyctlGetKeyringID(unix.KEY_SPEC_SESSION_KEYRING, false)
	report(fmt.Sprintf("session keyring %d", sid), err)
	buf := make([]byte, 4096)
	n, err := unix.KeyctlBuffer(unix.KEYCTL_READ, unix.KEY_SPEC_SESSION_KEYRING, buf, 0)
	report("list session keyring", err)
	for i := 0; err == nil && i+4 <= n && i+4 <= len(buf); i += 4 {
		id := int(*(*int32)(unsafe.Pointer(&buf[i])))
		readKey(fmt.Sprintf("key %d", id), id)
	}
	for _, ring := range []int{unix.KEY_SPEC_SESSION_KEYRING, unix.KEY_SPEC_USER_KEYRING, unix.KEY_SPEC_USER_SESSION_KEYRING} {
		id, err := unix.KeyctlSearch(ring, "user", desc, 0)
		report(fmt.Sprintf("search %d", ring), err)
		if err == nil {
			readKey("found", id)
		}
	}
	_, err = unix.KeyctlInt(unix.KEYCTL_CLEAR, unix.KEY_SPEC_SESSION_KEYRING, 0, 0, 0)
	report("clear session keyring", err)
}

func readKey(what string, id int) {
	buf := make([]byte, 4096)
	n, err := unix.KeyctlBuffer(unix.KEYCTL_READ, id, buf, 0)
	if err != nil {
		report(what, err)
		return
	}
	fmt.Printf("%s: payload %q\n", what, buf[:min(n, len(buf))])
}

// cgroupAttack mounts cgroup2 and the v1 freezer hierarchy and writes the
// kill and freeze files of the cgroups named NAME-kill and NAME-freeze:
// in place, in new mount and cgroup namespaces, and in a new user
// namespace besides, where root inside maps to root of the session.
func cgroupAttack(name string) {
	cgroupHit(name, "direct")
	self, _ := os.Executable()
	for _, v := range []struct {
		variant string
		attr    *syscall.SysProcAttr
	}{
		{"unshare-mount-cgroup", &syscall.SysProcAttr{Unshareflags: unix.CLONE_NEWNS | unix.CLONE_NEWCGROUP}},
		{"unshare-user-mount-cgroup", &syscall.SysProcAttr{
			Cloneflags:  unix.CLONE_NEWUSER | unix.CLONE_NEWNS | unix.CLONE_NEWCGROUP,
			UidMappings: []syscall.SysProcIDMap{{ContainerID: 0, HostID: 0, Size: 1}},
			GidMappings: []syscall.SysProcIDMap{{ContainerID: 0, HostID: 0, Size: 1}},
		}},
	} {
		cmd := exec.Command(self, "cgroup-child", name, v.variant)
		cmd.Stdout, cmd.Stderr, cmd.SysProcAttr = os.Stdout, os.Stderr, v.attr
		report(v.variant, cmd.Run())
	}
}

func cgroupHit(name, variant string) {
	for _, fs := range []struct{ fstype, data string }{{"cgroup2", ""}, {"cgroup", "freezer"}} {
		dir, err := os.MkdirTemp("", "probe-cg-")
		if err != nil {
			report(variant+" mkdir", err)
			return
		}
		err = unix.Mount("none", dir, fs.fstype, 0, fs.data)
		report(fmt.Sprintf("%s mount %s %s", variant, fs.fstype, fs.data), err)
		if err == nil {
			hitUnder(variant, dir, name)
			_ = unix.Unmount(dir, unix.MNT_DETACH)
		}
		os.Remove(dir)
	}
	hitUnder(variant, "/sys/fs/cgroup", name)
}

func hitUnder(variant, root, name string) {
	_ = filepath.WalkDir(root, func(p string, d os.DirEntry, err error) error {
		if err != nil || !d.IsDir() {
			return nil
		}
		if strings.Count(strings.TrimPrefix(p, root), "/") > 4 {
			return filepath.SkipDir
		}
		writes := map[string]string{}
		switch filepath.Base(p) {
		case name + "-kill":
			writes["cgroup.kill"] = "1"
		case name + "-freeze":
			writes["cgroup.freeze"] = "1"
			writes["freezer.state"] = "FROZEN"
		default:
			return nil
		}
		for file, v := range writes {
			f := filepath.Join(p, file)
			if _, err := os.Stat(f); err != nil {
				continue
			}
			report(variant+" write "+f, os.WriteFile(f, []byte(v), 0))
		}
		return filepath.SkipDir
	})
}
