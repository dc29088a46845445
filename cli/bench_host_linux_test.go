package cli

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// workloadRounds bounds BenchmarkHostBaseWorkload, whose every round
// writes and removes 10,000 files four times: `make bench`'s 200x would
// take an hour.
const workloadRounds = 3

// BenchmarkHostBaseWorkload is a source tree of 10,000 files untarred,
// `git status`ed and removed in an ordinary user's host-base session,
// against the same in a root session on the kernel's overlay, at the
// same paths: in the user's home (which the kernel's overlay serves for
// the user too) and in a directory outside it (fuse-overlayfs).
func BenchmarkHostBaseWorkload(b *testing.B) {
	if os.Geteuid() != 0 {
		b.Skip("needs root, for the root session and to run as an ordinary user")
	}
	if _, err := exec.LookPath("git"); err != nil {
		b.Skip("the workload runs git status; git is not installed")
	}
	if fi, err := os.Stat("/dev/fuse"); err == nil && fi.Mode().Perm()&0o006 != 0o006 {
		b.Logf("set-up: chmod 0666 /dev/fuse, as desktop systems ship it")
		if err := os.Chmod("/dev/fuse", 0o666); err != nil {
			b.Fatal(err)
		}
	}
	t := &testing.T{}
	root := newHarness(t, rootUser)
	if bin := os.Getenv("INCARNATE_BIN"); bin != "" {
		root.bin = bin
	}
	user := newHarness(t, user{"unprivileged", 65534, 65534, false})
	user.bin = root.bin
	tarball := sourceTarball(b, root.dir)
	home, outside := filepath.Join(user.dir, "home"), filepath.Join(user.dir, "outside")
	for _, d := range []string{home, outside} {
		if err := os.Mkdir(d, 0o755); err != nil {
			b.Fatal(err)
		}
		if err := os.Chown(d, 65534, 65534); err != nil {
			b.Fatal(err)
		}
	}
	user.home = home
	root.ok("new", "w")
	user.ok("new", "w")
	script := func(dir string) string {
		return fmt.Sprintf("set -e; cd %s; mkdir w; tar -xf %s -C w; git -C w status --porcelain >/dev/null; rm -rf w", dir, tarball)
	}
	times := map[string][]time.Duration{}
	rounds := min(b.N, workloadRounds)
	b.ResetTimer()
	for i := 0; i < rounds; i++ {
		for _, where := range []string{home, outside} {
			for _, h := range []*harness{root, user} {
				start := time.Now()
				h.ok("run", "w", "--", "sh", "-c", script(where))
				key := filepath.Base(where) + "/" + h.u.name
				times[key] = append(times[key], time.Since(start))
			}
		}
	}
	b.StopTimer()
	b.ReportMetric(0, "ns/op")
	for _, where := range []string{"home", "outside"} {
		u, r := median(times[where+"/unprivileged"]), median(times[where+"/root"])
		b.ReportMetric(float64(u)/float64(r), "x_"+where)
		if b.N > 1 {
			b.Logf("in %s: user's host base median %.0f ms, root's %.0f ms: ratio %.2f× (%d rounds)", where, ms(u), ms(r), float64(u)/float64(r), rounds)
		}
	}
}

// sourceTarball makes a tar of a git repository of 10,000 small source
// files in 100 directories, readable by everyone.
func sourceTarball(b *testing.B, dir string) string {
	src := filepath.Join(dir, "src-tree")
	for d := 0; d < 100; d++ {
		sub := filepath.Join(src, fmt.Sprintf("pkg%02d", d))
		if err := os.MkdirAll(sub, 0o755); err != nil {
			b.Fatal(err)
		}
		for f := 0; f < 100; f++ {
			body := strings.Repeat(fmt.Sprintf("// line of file %d in package %d\n", f, d), 20+f%40)
			if err := os.WriteFile(filepath.Join(sub, fmt.Sprintf("f%02d.go", f)), []byte(body), 0o644); err != nil {
				b.Fatal(err)
			}
		}
	}
	git := func(args ...string) {
		cmd := exec.Command("git", append([]string{"-c", "user.email=bench@example.invalid", "-c", "user.name=bench"}, args...)...)
		cmd.Dir = src
		if out, err := cmd.CombinedOutput(); err != nil {
			b.Fatalf("git %v: %v\n%s", args, err, out)
		}
	}
	git("init", "-q")
	git("add", "-A")
	git("commit", "-qm", "tree")
	tarball := filepath.Join(dir, "src.tar")
	if out, err := exec.Command("tar", "-cf", tarball, "-C", src, ".").CombinedOutput(); err != nil {
		b.Fatalf("tar: %v\n%s", err, out)
	}
	if err := os.Chmod(tarball, 0o644); err != nil {
		b.Fatal(err)
	}
	return tarball
}
