package sandbox

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/incarnate-dev/incarnate/internal/testbase"
)

// The test binary is also the stage: Cmd re-executes /proc/self/exe.
func TestMain(m *testing.M) {
	if IsStage() {
		RunStage()
	}
	os.Exit(testbase.RunNoLeaks(m))
}

// fixture is a busybox base and a session's upper and work dirs.
type fixture struct {
	base, upper, work, root string
}

func newFixture(t *testing.T) fixture {
	t.Helper()
	dir := testbase.SharedDir(t) // overlayfs leaves a mode-0 work/work behind
	f := fixture{
		base:  testbase.Busybox(t, filepath.Join(dir, "base")),
		upper: filepath.Join(dir, "upper"),
		work:  filepath.Join(dir, "work"),
		root:  filepath.Join(dir, "root"),
	}
	for _, d := range []string{f.upper, f.work, f.root} {
		if err := os.Mkdir(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	return f
}

func (f fixture) rootOps(overlay MountOverlay) []Op {
	overlay.Target, overlay.Upper, overlay.Work = f.root, f.upper, f.work
	if overlay.Lowers == nil {
		overlay.Lowers = []string{f.base}
	}
	overlay.UserXattr = os.Geteuid() != 0
	return []Op{
		ParentDeathSig{Signal: syscall.SIGKILL},
		MakeRslave{},
		overlay,
		MountProc{Target: f.root + "/proc"},
		MountDev{Target: f.root + "/dev"},
		MountSysfs{Target: f.root + "/sys"},
		NewPivotRoot(f.root),
		Hostname{Name: "box"},
		Dumpable{On: false},
	}
}

func processOps(cwd string, umask uint32) []Op {
	return []Op{NoNewPrivs{}, CloseFds{}, Umask{Mode: umask}, Chdir{Path: cwd}, NewSession{}, ParentDeathSig{Signal: syscall.SIGKILL}}
}

// run runs a shell script in the sandbox and returns its output.
func run(t *testing.T, root, proc []Op, script string) (string, int, error) {
	t.Helper()
	out, err := os.CreateTemp(t.TempDir(), "out")
	if err != nil {
		t.Fatal(err)
	}
	defer out.Close()
	cmd := &Cmd{
		Spec:       Spec{Root: root, Process: proc, Argv: []string{"/bin/sh", "-c", script}, Env: []string{"PATH=/bin"}},
		Cloneflags: Namespaces,
		Rootless:   os.Geteuid() != 0,
		Stdout:     out,
		Stderr:     out,
	}
	status, err := cmd.Run()
	b, _ := os.ReadFile(out.Name())
	return string(b), status, err
}

func TestInsideTheSandbox(t *testing.T) {
	f := newFixture(t)
	secret := filepath.Join(filepath.Dir(f.base), "host-secret")
	if err := os.WriteFile(secret, []byte("s3cret"), 0o644); err != nil {
		t.Fatal(err)
	}
	script := `
read pid comm state ppid pgrp sid rest < /proc/self/stat
echo "leader=$([ "$pid" = "$sid" ] && echo yes || echo no)"
echo "nnp=$(grep NoNewPrivs /proc/self/status | tr -d '\t ' | cut -d: -f2)"
echo "umask=$(umask)"
echo "cwd=$(pwd)"
echo "host=$(hostname)"
echo "pid1=$(cat /proc/1/comm)"
echo "os=$(cat /etc/os-release)"
echo "secret=$(cat ` + secret + ` 2>/dev/null || echo unreadable)"
echo "ptmx=$(ls /dev/pts/ | tr '\n' ' ')"
echo "null=$(echo x > /dev/null && echo ok)"
# Last, as the process itself: fd 3 is ls's own handle on the directory.
echo fds:; exec ls /proc/self/fd
`
	out, status, err := run(t, f.rootOps(MountOverlay{}), processOps("/tmp", 0o027), script)
	if err != nil || status != 0 {
		t.Fatalf("run: status %d, err %v, output:\n%s", status, err, out)
	}
	for _, want := range []string{
		"leader=yes", "nnp=1", "umask=0027", "cwd=/tmp", "host=box", "pid1=incarnate",
		"os=ID=incarnate-test", "secret=unreadable", "ptmx=ptmx ", "null=ok",
	} {
		if !strings.Contains(out, want+"\n") {
			t.Errorf("inside the sandbox: want line %q, got:\n%s", want, out)
		}
	}
	if !strings.HasSuffix(out, "fds:\n0\n1\n2\n3\n") {
		t.Errorf("the target inherited more than fds 0-2:\n%s", out)
	}
}

func TestWritesLandInUpperOnly(t *testing.T) {
	f := newFixture(t)
	out, status, err := run(t, f.rootOps(MountOverlay{}), processOps("/", 0o022), "echo data > /root/new && rm /etc/os-release")
	if err != nil || status != 0 {
		t.Fatalf("run: status %d, err %v, output:\n%s", status, err, out)
	}
	if b, err := os.ReadFile(filepath.Join(f.upper, "root", "new")); err != nil || string(b) != "data\n" {
		t.Errorf("upper/root/new = %q, %v; want the session's write", b, err)
	}
	if _, err := os.Stat(filepath.Join(f.base, "etc", "os-release")); err != nil {
		t.Errorf("base lost a file the session deleted: %v", err)
	}
	if _, err := os.Stat(filepath.Join(f.base, "root", "new")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("the session's write reached the base: %v", err)
	}
}

func TestExitStatusPassesThrough(t *testing.T) {
	f := newFixture(t)
	for script, want := range map[string]int{"exit 0": 0, "exit 3": 3, "kill -9 $$": 128 + 9} {
		_, status, err := run(t, f.rootOps(MountOverlay{}), processOps("/", 0o022), script)
		if err != nil || status != want {
			t.Errorf("%q: status %d, err %v; want %d", script, status, err, want)
		}
	}
}

// Overlay layer paths with the characters mount(2) options treat
// specially must mount correctly through both mount paths.
func TestOverlayOddPaths(t *testing.T) {
	for _, legacy := range []bool{false, true} {
		t.Run(fmt.Sprintf("legacy=%v", legacy), func(t *testing.T) {
			f := newFixture(t)
			odd := filepath.Join(filepath.Dir(f.base), `odd,dir:with\chars`)
			if err := os.Rename(f.base, odd); err != nil {
				t.Fatal(err)
			}
			f.upper = renameTo(t, f.upper, `up,per:x\y`)
			f.work = renameTo(t, f.work, `wo,rk:x\y`)
			out, status, err := run(t, f.rootOps(MountOverlay{Lowers: []string{odd}, Legacy: legacy}), processOps("/", 0o022),
				"cat /etc/os-release && echo w > /w")
			if err != nil || status != 0 || !strings.Contains(out, "ID=incarnate-test") {
				t.Fatalf("status %d, err %v, output:\n%s", status, err, out)
			}
			if _, err := os.Stat(filepath.Join(f.upper, "w")); err != nil {
				t.Errorf("write did not land in the odd upper dir: %v", err)
			}
		})
	}
}

func renameTo(t *testing.T, p, name string) string {
	t.Helper()
	np := filepath.Join(filepath.Dir(p), name)
	if err := os.Rename(p, np); err != nil {
		t.Fatal(err)
	}
	return np
}

// A failing op comes back as an OpError naming the op, the path and the
// errno, with the op's fallback status.
func TestFailingOps(t *testing.T) {
	f := newFixture(t)
	missing := filepath.Join(filepath.Dir(f.base), "missing")
	tests := []struct {
		name       string
		root, proc []Op
		wantOp     string
		wantPath   string
		wantErrno  syscall.Errno
		wantStatus int
	}{
		{"chdir to a missing dir", f.rootOps(MountOverlay{}), processOps("/nonexistent", 0o022),
			"chdir", "/nonexistent", syscall.ENOENT, 114},
		{"overlay on a missing lower", f.rootOps(MountOverlay{Lowers: []string{missing}}), processOps("/", 0o022),
			"mount_overlay", missing, syscall.ENOENT, 115},
		{"pivot into a missing root", []Op{MakeRslave{}, NewPivotRoot(missing)}, processOps("/", 0o022),
			"pivot_root", missing, syscall.ENOENT, 116},
		{"bind of a missing source", append(f.rootOps(MountOverlay{})[:3], Bind{Src: missing, Dst: f.root + "/mnt"}), processOps("/", 0o022),
			"bind", missing, syscall.ENOENT, 106},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			out, status, err := run(t, tt.root, tt.proc, "echo ran")
			var oe *OpError
			if !errors.As(err, &oe) {
				t.Fatalf("err = %v (status %d, output %q), want an *OpError", err, status, out)
			}
			if oe.Op != tt.wantOp || oe.Path != tt.wantPath || oe.Errno != tt.wantErrno || status != tt.wantStatus {
				t.Errorf("got op %q path %q errno %v status %d; want %q %q %v %d",
					oe.Op, oe.Path, oe.Errno, status, tt.wantOp, tt.wantPath, tt.wantErrno, tt.wantStatus)
			}
			if !errors.Is(err, tt.wantErrno) {
				t.Errorf("errors.Is(err, %v) = false for %v", tt.wantErrno, err)
			}
			if strings.Contains(out, "ran") {
				t.Errorf("the target ran despite the failed op")
			}
		})
	}
}

func TestCommandNotFound(t *testing.T) {
	f := newFixture(t)
	cmd := &Cmd{Spec: Spec{Root: f.rootOps(MountOverlay{}), Process: processOps("/", 0o022), Argv: []string{"no-such-command"}, Env: []string{"PATH=/bin"}},
		Cloneflags: Namespaces, Rootless: os.Geteuid() != 0}
	status, err := cmd.Run()
	var oe *OpError
	if !errors.As(err, &oe) || oe.Op != "exec" || status != 127 {
		t.Fatalf("status %d, err %v; want an exec OpError and 127", status, err)
	}
}

// A session can leave symlinks where incarnate mounts next time. They
// must resolve inside the session's root, never on the host.
func TestSymlinkedMountPointsStayInside(t *testing.T) {
	f := newFixture(t)
	host := filepath.Join(filepath.Dir(f.base), "host-side")
	if err := os.Mkdir(host, 0o755); err != nil {
		t.Fatal(err)
	}
	for link, target := range map[string]string{
		"proc":      host + "/proc-here", // dangling, absolute: would create a host dir
		"etc/hosts": host + "/hosts-here",
		"mnt":       "../../../../../../" + host + "/mnt-here",
		".oldroot":  host + "/oldroot-here",
	} {
		p := filepath.Join(f.upper, link)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.Symlink(target, p); err != nil {
			t.Fatal(err)
		}
	}
	hosts := filepath.Join(filepath.Dir(f.base), "hosts-src")
	if err := os.WriteFile(hosts, []byte("127.0.0.1 inside\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	root := f.rootOps(MountOverlay{})
	pivot := len(root) - 3
	root = append(root[:pivot:pivot], append([]Op{
		Bind{Src: hosts, Dst: f.root + "/etc/hosts"},
		MountTmpfs{Target: f.root + "/mnt", Mode: 0o755},
	}, root[pivot:]...)...)
	out, status, err := run(t, root, processOps("/", 0o022), "cat /etc/hosts; ls /proc/self/status")
	if err != nil || status != 0 {
		t.Fatalf("status %d, err %v, output:\n%s", status, err, out)
	}
	if !strings.Contains(out, "127.0.0.1 inside") || !strings.Contains(out, "/proc/self/status") {
		t.Errorf("mounts did not land inside the session: %q", out)
	}
	ents, _ := os.ReadDir(host)
	if len(ents) != 0 {
		t.Errorf("the host side gained %v through the session's symlinks", ents)
	}
}
