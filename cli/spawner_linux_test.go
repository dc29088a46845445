package cli

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"testing"
	"unsafe"

	"golang.org/x/sys/unix"

	"github.com/incarnate-dev/incarnate/internal/testbase"
)

// The release build's spawner is C before the Go runtime
// (internal/prestage/c/spawner.c), a plain build's is Go: every process
// of a session comes from one or the other, so what a session looks like
// from inside, its statuses and its errors must not tell them apart. The
// Go side is the one every other test of the suite runs through.
func TestSpawnerDifferential(t *testing.T) {
	// What `make` leaves ignored reaches incarnate, and must not reach
	// the session's processes. Signal 32 is one Go's runtime never
	// touches, so it stays ignored through every Go start on the way.
	defer ignoreSignal(t, 32)()
	forEachUser(t, func(t *testing.T, goH *harness) {
		cH := newHarness(t, goH.u)
		cH.bin = releaseBuild(t, cH.dir)
		if err := os.Chmod(cH.bin, 0o755); err != nil {
			t.Fatal(err)
		}
		for _, h := range []*harness{goH, cH} {
			h.ok("new", "--base", "bb", "--env", "A=1", "s")
		}
		spawnerThreads(t, goH, cH)
		// The caller's session keyring, which no session may possess.
		ring, err := unix.KeyctlGetKeyringID(unix.KEY_SPEC_SESSION_KEYRING, true)
		if err != nil {
			t.Fatal(err)
		}
		view := fmt.Sprintf("grep -c '^%08x ' /proc/keys\n", ring) + `grep -E '^(Cap|NoNewPrivs|Seccomp)' /proc/self/status
awk '{print $1, $3}' /proc/self/uid_map /proc/self/gid_map
cat /proc/self/cgroup; ls /proc/self/fd; umask; pwd; id
grep -E '^Sig(Blk|Ign)' /proc/self/status
unshare -U true 2>&1; echo "unshare $?"
exit 7`
		cases := []struct {
			stdin string
			args  []string
		}{
			{"", []string{"run", "s", "--", "sh", "-c", view}},
			{"", []string{"run", "s", "--", "sh", "-c", "env | sort"}},
			{"one\ntwo\n", []string{"run", "s", "--", "sh", "-c", "cat; echo done"}},
			{"", []string{"run", "s", "--", "sh", "-c", "kill -9 $$"}},
			{"", []string{"run", "--umask", "077", "s", "--", "sh", "-c", "umask; touch /tmp/f; ls -l /tmp/f"}},
			{"", []string{"run", "s", "--", "nosuchcommand"}},
			{"", []string{"run", "s", "--", "/no/such/file"}},
			{"", []string{"run", "s", "--", "/etc/passwd"}},
			{"", []string{"run", "s", "--", "/tmp"}},
			{"", []string{"run", "--cwd", "/no/such/dir", "s", "--", "pwd"}},
			{"", []string{"run", "--cwd", "/etc", "s", "--", "pwd"}},
			// PATH entries joined and cleaned as filepath.Join does: $0 of
			// a script is the path it was found at.
			{"", []string{"run", "s", "--", "sh", "-c", "mkdir -p /tmp/p && printf '#!/bin/sh\\necho $0\\n' > /tmp/p/t && chmod +x /tmp/p/t"}},
			{"", []string{"run", "--env", "PATH=/tmp/./p//:/bin", "s", "--", "t"}},
			{"", []string{"run", "--env", "PATH=/tmp/q/../p:/bin", "s", "--", "t"}},
			{"", []string{"run", "--env", "PATH=", "s", "--", "t"}},
			{"", []string{"run", "s", "--", "/" + strings.Repeat("n", 5000)}},
			{"", append([]string{"run", "s", "--", "sh", "-c", `echo $#`, "x"}, strings.Fields(strings.Repeat("a ", 17000))...)},
		}
		for _, c := range cases {
			gOut, gErr, gSt := runIn(t, goH, c.stdin, c.args...)
			cOut, cErr, cSt := runIn(t, cH, c.stdin, c.args...)
			gErr, cErr = strings.ReplaceAll(gErr, goH.dir, "DIR"), strings.ReplaceAll(cErr, cH.dir, "DIR")
			if strings.Contains(c.args[len(c.args)-1], "Sig(Blk|Ign)") && !strings.Contains(gOut, "SigIgn:\t0000000000000000\n") {
				t.Errorf("a session process has signals ignored:\n%s", gOut)
			}
			if gOut != cOut || gErr != cErr || gSt != cSt {
				t.Errorf("%q:\nC spawner: status %d\n%s%s\nGo spawner: status %d\n%s%s", c.args, cSt, cOut, cErr, gSt, gOut, gErr)
			}
		}
	})
}

// runIn runs incarnate under h with stdin, and makes the output of
// different stores comparable: the time in ls -l goes.
func runIn(t *testing.T, h *harness, stdin string, args ...string) (string, string, int) {
	t.Helper()
	var out, errOut strings.Builder
	cmd := h.command(args...)
	cmd.Stdin, cmd.Stdout, cmd.Stderr = strings.NewReader(stdin), &out, &errOut
	err := cmd.Run()
	if _, ok := err.(*exec.ExitError); err != nil && !ok {
		t.Fatal(err)
	}
	clock := regexp.MustCompile(`[A-Z][a-z]{2} +\d+ +\d\d:\d\d`)
	return clock.ReplaceAllString(out.String(), "TIME"), errOut.String(), cmd.ProcessState.ExitCode()
}

// spawnerThreads checks that the two builds have the spawners they
// should: the C one is a single thread, the Go one has the runtime's.
func spawnerThreads(t *testing.T, goH, cH *harness) {
	for _, h := range []*harness{goH, cH} {
		holder := h.command("run", "s", "--", "sleep", "1000")
		if err := holder.Start(); err != nil {
			t.Fatal(err)
		}
		sleep := sessionPid(t, "sleep 1000")
		b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", sleep))
		if err != nil {
			t.Fatal(err)
		}
		ppid := regexp.MustCompile(`(?m)^PPid:\s+(\d+)`).FindSubmatch(b)
		st, err := os.ReadFile(fmt.Sprintf("/proc/%s/status", ppid[1]))
		if err != nil {
			t.Fatal(err)
		}
		threads := regexp.MustCompile(`(?m)^Threads:\s+(\d+)`).FindSubmatch(st)
		single := string(threads[1]) == "1"
		if want := h == cH; single != want {
			t.Errorf("the spawner of %s has %s threads", h.bin, threads[1])
		}
		h.ok("stop", "s")
		_ = holder.Wait()
		for !sessionFree(h, "s") {
		}
	}
}

// forEachSpawner runs fn as forEachUser does, twice: with the Go spawner
// (the test binary, as every test) and with the C one (the release
// build), each in a harness of its own. The attacks on what the spawner
// imposes run so.
func forEachSpawner(t *testing.T, fn func(t *testing.T, h *harness)) {
	forEachUser(t, func(t *testing.T, h *harness) {
		t.Run("go-spawner", func(t *testing.T) { fn(t, h) })
		t.Run("c-spawner", func(t *testing.T) {
			c := newHarness(t, h.u)
			c.bin = filepath.Join(c.dir, "incarnate-release")
			// With the keeper binary built beside it, as make build
			// leaves them.
			for _, suffix := range []string{"", "-keeper"} {
				b, err := os.ReadFile(sharedRelease(t) + suffix)
				if err == nil {
					err = os.WriteFile(c.bin+suffix, b, 0o755)
				}
				if err != nil {
					t.Fatal(err)
				}
			}
			fn(t, c)
		})
	})
}

var release struct {
	once sync.Once
	bin  string
	err  error
}

// sharedRelease is a release build made once for the whole test run
// (removed by TestMain).
func sharedRelease(t *testing.T) string {
	release.once.Do(func() {
		dir, err := os.MkdirTemp("", "incarnate-release-")
		if err != nil {
			release.err = err
			return
		}
		release.bin = filepath.Join(dir, "incarnate")
		release.err = testbase.MakeRelease(release.bin)
	})
	if release.err != nil {
		t.Fatal(release.err)
	}
	return release.bin
}

// removeRelease takes sharedRelease's build away.
func removeRelease() {
	if release.bin != "" {
		os.RemoveAll(filepath.Dir(release.bin))
	}
}

// ignoreSignal ignores sig in this process, as make does, until the
// function it returns is called.
func ignoreSignal(t *testing.T, sig int) func() {
	type sigaction struct{ handler, flags, restorer, mask uint64 }
	var old sigaction
	ign := sigaction{handler: 1} // SIG_IGN
	if _, _, e := syscall.RawSyscall6(syscall.SYS_RT_SIGACTION, uintptr(sig), uintptr(unsafe.Pointer(&ign)), uintptr(unsafe.Pointer(&old)), 8, 0, 0); e != 0 {
		t.Fatalf("ignore signal %d: %v", sig, e)
	}
	return func() {
		_, _, _ = syscall.RawSyscall6(syscall.SYS_RT_SIGACTION, uintptr(sig), uintptr(unsafe.Pointer(&old)), 0, 8, 0, 0)
	}
}
