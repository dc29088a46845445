package cli

import (
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// floorSource is the least a Go program can do to run /bin/true the way
// incarnate does: re-exec itself into new mount, pid, uts and ipc
// namespaces, mount the overlay and proc, pivot_root, fork /bin/true and
// wait. No store, keeper, user namespace or /dev. What it costs against
// bwrap is the floor for incarnate's cold start on this machine.
const floorSource = `package main

import (
	"os"
	"syscall"
)

func must(err error) {
	if err != nil {
		panic(err)
	}
}

func run(path string, argv []string, flags uintptr) int {
	pid, err := syscall.ForkExec(path, argv, &syscall.ProcAttr{
		Files: []uintptr{0, 1, 2}, Sys: &syscall.SysProcAttr{Cloneflags: flags}})
	must(err)
	var ws syscall.WaitStatus
	_, err = syscall.Wait4(pid, &ws, 0, nil)
	must(err)
	return ws.ExitStatus()
}

func main() {
	lower, dir := os.Args[1], os.Args[2]
	if os.Args[0] != "stage" {
		os.Exit(run("/proc/self/exe", []string{"stage", lower, dir},
			syscall.CLONE_NEWNS|syscall.CLONE_NEWPID|syscall.CLONE_NEWUTS|syscall.CLONE_NEWIPC))
	}
	root := dir + "/root"
	must(syscall.Mount("", "/", "", syscall.MS_REC|syscall.MS_SLAVE, ""))
	must(syscall.Mount("overlay", root, "overlay", 0, "lowerdir="+lower+",upperdir="+dir+"/upper,workdir="+dir+"/work"))
	must(syscall.Mount("proc", root+"/proc", "proc", 0, ""))
	must(syscall.Chdir(root))
	must(os.MkdirAll(".oldroot", 0o755))
	must(syscall.PivotRoot(".", ".oldroot"))
	must(syscall.Unmount("/.oldroot", syscall.MNT_DETACH))
	must(syscall.Chdir("/"))
	os.Exit(run("/bin/true", []string{"true"}, 0))
}
`

// BenchmarkGoFloor times floorSource against bwrap over the same base: a
// ratio above incarnate's bar here means no Go re-exec design meets it on
// this machine.
func BenchmarkGoFloor(b *testing.B) {
	s := newBench(b)
	goBin, err := exec.LookPath("go")
	if err != nil {
		b.Skip("the Go floor needs the go command to build its probe")
	}
	src := b.TempDir()
	for name, body := range map[string]string{"main.go": floorSource, "go.mod": "module floor\n\ngo 1.22\n"} {
		if err := os.WriteFile(filepath.Join(src, name), []byte(body), 0o644); err != nil {
			b.Fatal(err)
		}
	}
	bin := filepath.Join(src, "floor")
	build := exec.Command(goBin, "build", "-trimpath", "-o", bin, ".")
	build.Dir, build.Env = src, append(os.Environ(), "CGO_ENABLED=0", "GOFLAGS=")
	if out, err := build.CombinedOutput(); err != nil {
		b.Fatalf("build the floor probe: %v\n%s", err, out)
	}
	floor := variant{"go-floor", timed(func() *exec.Cmd { return exec.Command(bin, s.layer, s.shellDir) })}
	measure(b, floor, s.bwrap())
}

// cFloor builds testdata/cfloor.c, the kernel work of a cold run on a
// root session in one C program, and returns a variant of it that runs
// with the given "no-" words; nil where gcc is missing.
func (s *benchSetup) cFloor(b *testing.B, name string, words ...string) *variant {
	bin := filepath.Join(s.h.dir, "cfloor.bin")
	if _, err := os.Stat(bin); err != nil {
		gcc, err := exec.LookPath("gcc")
		if err != nil {
			return nil
		}
		if out, err := exec.Command(gcc, "-O2", "-o", bin, "testdata/cfloor.c").CombinedOutput(); err != nil {
			b.Fatalf("build testdata/cfloor.c: %v\n%s", err, out)
		}
	}
	// A session directory of its own, with the mount points the base may
	// lack made in its upper dir, as incarnate makes them.
	dir := filepath.Join(s.h.dir, name)
	for _, d := range []string{"upper/proc", "upper/dev", "upper/sys", "work", "root"} {
		if err := os.MkdirAll(filepath.Join(dir, d), 0o755); err != nil {
			b.Fatal(err)
		}
	}
	args := append([]string{s.layer, dir}, words...)
	return &variant{name, func(b *testing.B) time.Duration {
		d := timed(func() *exec.Cmd { return exec.Command(bin, args...) })(b)
		// Its keeper cleans up after the status, as incarnate's does;
		// the next round waits for that, untimed.
		lock, err := os.Open(filepath.Join(dir, "lock"))
		if err != nil {
			b.Fatal(err)
		}
		defer lock.Close()
		if err := unix.Flock(int(lock.Fd()), unix.LOCK_EX); err != nil {
			b.Fatal(err)
		}
		return d
	}}
}

// BenchmarkHardenedFloor times the C floor of a cold run against bwrap,
// with each part of the confinement left out in turn: what the id range,
// the session cgroup and the spawner's confinement cost in the kernel,
// whatever the language around them. bwrap does none of the three, nor
// the overlay.
func BenchmarkHardenedFloor(b *testing.B) {
	s := newBench(b)
	full := s.cFloor(b, "cfloor")
	if full == nil {
		b.Skip("the C floor needs gcc to build testdata/cfloor.c")
	}
	measure(b, *full, s.bwrap(),
		s.cFloor(b, "cfloor-no-idmap", "no-idmap"),
		s.cFloor(b, "cfloor-no-cgroup", "no-cgroup"),
		s.cFloor(b, "cfloor-no-confine", "no-confine"),
		s.cFloor(b, "cfloor-bare", "no-idmap", "no-cgroup", "no-confine"))
}
