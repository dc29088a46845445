package cli

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// keeperExe returns the binary the keeper of session name runs from,
// found as the process holding the session's lock (fd 6) while a command
// runs inside.
func keeperExe(t *testing.T, h *harness, name string) string {
	t.Helper()
	holder := h.command("run", name, "--", "cat")
	in, err := holder.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	holder.Stderr = &out
	if err := holder.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() {
		in.Close()
		if err := holder.Wait(); err != nil {
			t.Errorf("run cat: %v\n%s", err, out.String())
		}
	}()
	dir := filepath.Join(h.store, "sessions", name)
	var exe string
	waitFor(t, "the session's keeper", func() bool {
		exe = keeperHolding(dir)
		return exe != ""
	})
	return exe
}

func keeperHolding(dir string) string {
	procs, _ := filepath.Glob("/proc/[0-9]*")
	for _, p := range procs {
		if cmd, _ := os.ReadFile(p + "/cmdline"); string(cmd) != "incarnate:keeper\x00" {
			continue
		}
		if lock, _ := os.Readlink(p + "/fd/6"); lock == dir {
			exe, _ := os.Readlink(p + "/exe")
			return exe
		}
	}
	return ""
}

// The release build starts its keepers from the keeper binary `make
// build` made beside it, and only from one built with it that no one
// else can write: any other falls back to incarnate itself, which works
// the same.
func TestKeeperBinary(t *testing.T) {
	forEachUser(t, func(t *testing.T, h *harness) {
		h.bin = releaseBuild(t, h.dir)
		keeper := h.bin + "-keeper"
		for _, f := range []string{h.bin, keeper} {
			if err := os.Chmod(f, 0o755); err != nil {
				t.Fatal(err)
			}
		}
		h.ok("new", "--base", "bb", "s")
		if got := keeperExe(t, h, "s"); got != keeper {
			t.Errorf("the release build's keeper runs from %s, want %s", got, keeper)
		}
		waitFor(t, "the session to be free", func() bool { return sessionFree(h, "s") })

		// Someone who may write the keeper binary must not get to run
		// code as the session's keeper: one writable by others is
		// passed over, as a foreign one is.
		if err := os.Chmod(keeper, 0o777); err != nil {
			t.Fatal(err)
		}
		fallsBack(t, h, "writable by others")
		if err := os.Chmod(keeper, 0o755); err != nil {
			t.Fatal(err)
		}
		foreign := filepath.Join(h.dir, "foreign")
		if out, err := exec.Command("go", "build", "-o", foreign, "../internal/keeper").CombinedOutput(); err != nil {
			t.Fatalf("go build: %v\n%s", err, out)
		}
		if err := os.Rename(foreign, keeper); err != nil {
			t.Fatal(err)
		}
		if err := os.Chmod(keeper, 0o755); err != nil {
			t.Fatal(err)
		}
		fallsBack(t, h, "built apart")
		if err := os.Remove(keeper); err != nil {
			t.Fatal(err)
		}
		fallsBack(t, h, "missing")
	})
}

// fallsBack checks that session s's keeper runs from incarnate itself,
// and that commands in it still work.
func fallsBack(t *testing.T, h *harness, why string) {
	t.Helper()
	if got := keeperExe(t, h, "s"); got != h.bin {
		t.Errorf("keeper binary %s: the keeper runs from %s, want %s", why, got, h.bin)
	}
	waitFor(t, "the session to be free", func() bool { return sessionFree(h, "s") })
	if out := h.ok("run", "s", "--", "sh", "-c", "echo ran"); strings.TrimSpace(out) != "ran" {
		t.Errorf("keeper binary %s: run said %q", why, out)
	}
	waitFor(t, "the session to be free", func() bool { return sessionFree(h, "s") })
}
