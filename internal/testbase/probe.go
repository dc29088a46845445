package testbase

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"sync"
	"testing"
)

var probe struct {
	once sync.Once
	bin  []byte
	err  error
}

// Probe writes the attack probe (./probe, a static program that makes
// the syscalls busybox cannot) into a fresh directory every uid can read
// and returns its path. It is built once per test process, the first
// time a test asks, and kept in memory, so nothing outlives the tests.
func Probe(t testing.TB) string {
	t.Helper()
	probe.once.Do(func() { probe.bin, probe.err = buildProbe() })
	if probe.err != nil {
		t.Fatal(probe.err)
	}
	path := filepath.Join(SharedDir(t), "probe")
	if err := os.WriteFile(path, probe.bin, 0o755); err != nil {
		t.Fatal(err)
	}
	return path
}

func buildProbe() ([]byte, error) {
	goBin, err := exec.LookPath("go")
	if err != nil {
		goBin = filepath.Join(runtime.GOROOT(), "bin", "go")
	}
	dir, err := os.MkdirTemp("", "incarnate-probe-")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(dir)
	out := filepath.Join(dir, "probe")
	// Built by import path from the test's own directory, which lies in
	// this module whichever package's tests ask.
	build := exec.Command(goBin, "build", "-o", out, "github.com/incarnate-dev/incarnate/internal/testbase/probe")
	build.Env = append(os.Environ(), "CGO_ENABLED=0")
	if b, err := build.CombinedOutput(); err != nil {
		return nil, fmt.Errorf("build the attack probe: %v\n%s", err, b)
	}
	return os.ReadFile(out)
}
