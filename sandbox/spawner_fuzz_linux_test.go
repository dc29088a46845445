package sandbox

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/incarnate-dev/incarnate/internal/testbase"
)

// The C spawner of the release build reads whatever the keeper sends
// within its bounds: a confine message and a job of any bytes get a
// JSON answer (or an exit with the failure's status), never a crash or a
// hang, and it goes once the keeper hangs up. It runs in a user
// namespace of its own, as an unprivileged uid outside, so that a job
// the fuzzer makes up owns nothing on the host.
func FuzzSpawnerMessages(f *testing.F) {
	if os.Geteuid() != 0 {
		f.Skip("the spawner makes a cgroup namespace, which takes a user namespace mapped by root here")
	}
	confine, err := encodeConfine([]Op{NoNewPrivs{}, CloseFds{}, FreshKeyring{}, LandlockScope{}, CapBounds{}, Seccomp{}})
	if err != nil {
		f.Fatal(err)
	}
	job, err := encodeJob(1, SpawnRequest{Argv: []string{"true"}, Env: []string{"PATH=/usr/bin:/bin"}, Dir: "/no/such", DirElse: "/"})
	if err != nil {
		f.Fatal(err)
	}
	fallback, _ := encodeJob(2, SpawnRequest{Argv: []string{"/no/such"}, Fallback: [][]string{{"nosuch"}, {"/bin/true", "x"}}, Env: []string{"PATH="}, Umask: 0o22})
	long, _ := encodeJob(3, SpawnRequest{Argv: []string{"/" + strings.Repeat("n", 5000)}, Env: []string{"PATH=/./usr//bin/:/bin"}})
	f.Add(confine, job)
	f.Add(confine, fallback)
	f.Add(confine, long)
	f.Add(confine[:len(confine)/2], job)
	f.Add(confine, job[:len(job)-3])
	f.Add([]byte("incSC\xff\xff\xff\x7f"), job)
	f.Add(confine, []byte("incSJ\x01\x00\x00\x00\x00\x00\x00\x00\xff\xff\xff\xff"))
	f.Add([]byte{}, []byte{})
	// A seccomp program is the keeper's policy, not input: one the
	// fuzzer made up may refuse the spawner its own exit.
	var filters [2][]byte
	for i, nested := range []bool{false, true} {
		prog, err := seccompFilter(nested)
		if err != nil {
			f.Fatal(err)
		}
		w := &wireWriter{}
		w.filter(prog)
		filters[i] = w.b
	}
	bin := releaseSpawner(f)
	f.Fuzz(func(t *testing.T, confine, job []byte) {
		if bytes.Contains(confine, []byte("seccomp\x00")) && !bytes.Contains(confine, filters[0]) && !bytes.Contains(confine, filters[1]) {
			t.Skip("a seccomp program of the fuzzer's")
		}
		runSpawnerFuzz(t, bin, confine, job)
	})
}

// releaseSpawner is the release build, whose spawner is the C one.
func releaseSpawner(f *testing.F) string {
	dir, err := os.MkdirTemp("", "incarnate-fuzz-")
	if err != nil {
		f.Fatal(err)
	}
	f.Cleanup(func() { os.RemoveAll(dir) })
	// Where the unprivileged uid it runs as can reach it.
	if err := os.Chmod(dir, 0o755); err != nil {
		f.Fatal(err)
	}
	bin := filepath.Join(dir, "incarnate")
	if err := testbase.MakeRelease(bin); err != nil {
		f.Fatal(err)
	}
	return bin
}

func runSpawnerFuzz(t *testing.T, bin string, confine, job []byte) {
	fds, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_SEQPACKET|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin)
	cmd.Args = []string{spawnerArg0}
	cmd.Env, cmd.Dir = []string{}, "/"
	cmd.ExtraFiles = []*os.File{os.NewFile(uintptr(fds[1]), "spawner")}
	cmd.SysProcAttr = &syscall.SysProcAttr{
		Cloneflags:  unix.CLONE_NEWUSER,
		UidMappings: []syscall.SysProcIDMap{{ContainerID: 0, HostID: 65534, Size: 1}},
		GidMappings: []syscall.SysProcIDMap{{ContainerID: 0, HostID: 65534, Size: 1}},
		// root of the namespace, so that it has its capabilities there
		Credential: &syscall.Credential{Uid: 0, Gid: 0, NoSetGroups: true},
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	unix.Close(fds[1])
	conn, err := newPacketConn(fds[0], "spawner")
	if err != nil {
		t.Fatal(err)
	}
	answered := func(what string) bool {
		var rep spawnerReply
		got, fds, err := conn.recvBytes()
		closeAll(fds)
		if err != nil {
			return false
		}
		if err := json.Unmarshal(got, &rep); err != nil {
			t.Errorf("%s: the spawner said %q, not JSON: %v", what, got, err)
		}
		return true
	}
	if answered("start") && conn.sendBytes(confine) == nil && answered("confine") {
		null, err := os.Open(os.DevNull)
		if err != nil {
			t.Fatal(err)
		}
		n := int(null.Fd())
		if conn.sendBytes(job, n, n, n) == nil {
			answered("job")
		}
		null.Close()
	}
	conn.Close()
	err = cmd.Wait()
	if ctx.Err() != nil {
		t.Fatalf("the spawner hung")
	}
	if ws, ok := cmd.ProcessState.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
		t.Fatalf("the spawner died of %v", ws.Signal())
	}
}
