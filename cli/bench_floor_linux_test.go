package cli

import (
	"os"
	"os/exec"
	"path/filepath"
	"testing"
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
