package cli

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// set changes a stopped session's options, checked as new checks them;
// a running one keeps its options unless --force stops it.
func TestSetOptions(t *testing.T) {
	forEachUser(t, func(t *testing.T, h *harness) {
		h.ok("new", "--base", "bb", "--env", "A=1", "s")
		h.ok("set", "s", "--net", "none", "--env", "B=2", "--hostname", "box")
		out := h.ok("run", "s", "--", "sh", "-c", `echo "$A/$B/$(hostname)"; ls /sys/class/net`)
		if out != "/2/box\nlo\n" {
			t.Errorf("after set --net none --env B=2 --hostname box, inside: %q", out)
		}
		for _, tc := range []struct {
			args   []string
			status int
			want   string
		}{
			{[]string{"set", "s"}, 2, "needs an option"},
			{[]string{"set", "s", "--net", "bogus"}, 2, "want host or none"},
			{[]string{"set", "s", "--env", "1X=y"}, 2, "--env"},
			{[]string{"set", "s", "--bind", "/nonexistent-incarnate:/x"}, 2, "nonexistent-incarnate"},
			{[]string{"set", "nosuch", "--net", "host"}, 1, "does not exist"},
			// 0 is neither "no limit" nor, silently, the default.
			{[]string{"set", "s", "--pids", "0"}, 2, "--pids: want a number from 16 to 4194304"},
			{[]string{"new", "--pids", "0", "p"}, 2, "--pids: want a number from 16 to 4194304"},
			{[]string{"new", "--pids", "15", "p"}, 2, "--pids: want a number from 16"},
		} {
			if _, errOut, status := h.run(tc.args...); status != tc.status || !strings.Contains(errOut, tc.want) {
				t.Errorf("incarnate %v: status %d, %q; want %d and %q", tc.args, status, errOut, tc.status, tc.want)
			}
		}
		bg := h.command("run", "s", "--", "sleep", "100")
		if err := bg.Start(); err != nil {
			t.Fatal(err)
		}
		defer func() { _ = bg.Process.Kill(); _ = bg.Wait() }()
		waitFor(t, "the sleep to run", func() bool { return regexpLine(h.ok("ls"), "s", "1") })
		if _, errOut, status := h.run("set", "s", "--net", "host"); status != 1 || !strings.Contains(errOut, "in use") {
			t.Errorf("set of a running session: status %d, %q; want a refusal", status, errOut)
		}
		h.ok("set", "--force", "s", "--net", "host")
		if out := h.ok("run", "s", "--", "sh", "-c", "ls /sys/class/net | wc -l"); strings.TrimSpace(out) == "1" {
			t.Errorf("set --force --net host left the session without the host's network")
		}
	})
}

// new stands a session on default_base from config.toml unless --base
// says otherwise; a bad config is named with its file and line.
func TestNewUsesDefaultBase(t *testing.T) {
	h := newHarness(t, rootUser)
	config := filepath.Join(h.dir, ".config", "incarnate", "config.toml")
	if err := os.MkdirAll(filepath.Dir(config), 0o755); err != nil {
		t.Fatal(err)
	}
	write := func(text string) {
		if err := os.WriteFile(config, []byte(text), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write("theme = \"dusk\"\ndefault_base = \"bb\"\n")
	h.ok("new", "s")
	h.ok("new", "--base", "host", "t")
	ls := h.ok("ls")
	if lsColumn(ls, "s", 1) != "bb" || lsColumn(ls, "t", 1) != "host" {
		t.Errorf("default_base = bb, then new s and new --base host t:\n%s", ls)
	}
	write("default_base = \"nosuch\"\n")
	if _, errOut, status := h.run("new", "u"); status != 1 || !strings.Contains(errOut, config) || !strings.Contains(errOut, "--base") {
		t.Errorf("default_base naming no base: status %d, %q; want the config file named and --base offered", status, errOut)
	}
	write("theme = \"dusk\"\ncolour = \"x\"\n")
	if _, errOut, status := h.run("new", "u"); status != 1 || !strings.Contains(errOut, config+": line 2: unknown field colour") {
		t.Errorf("an unknown key: status %d, %q; want its file and line", status, errOut)
	}
	write("sort = \"sideways\"\n")
	if _, errOut, _ := h.run("new", "u"); !strings.Contains(errOut, config+": line 1:") {
		t.Errorf("a bad value: %q; want its file and line", errOut)
	}
	// A wrong type in the config's words, not TOML's or Go's.
	write("theme = \"dusk\"\n\ndefault_base = 5\n")
	want := config + ": line 3: default_base must be a base name (a string), got 5"
	if _, errOut, status := h.run("new", "u"); status != 1 || !strings.Contains(errOut, want) || strings.Contains(errOut, "int64") {
		t.Errorf("default_base = 5: status %d, %q; want %q", status, errOut, want)
	}
	// enter can do without the config: it says what is wrong and opens
	// the shell.
	h.ok("new", "--base", "bb", "e")
	enter := h.command("enter", "e")
	enter.Stdin = strings.NewReader("echo in-$((6*7))\n")
	var out, errOut strings.Builder
	enter.Stdout, enter.Stderr = &out, &errOut
	if err := enter.Run(); err != nil || !strings.Contains(out.String(), "in-42") || !strings.Contains(errOut.String(), want) {
		t.Errorf("enter with default_base = 5: %v, stdout %q, stderr %q; want the shell, and %q", err, out.String(), errOut.String(), want)
	}
}

// enter starts config.toml's shell when neither --shell nor the session
// names one, and /bin/sh in a session that lacks it.
func TestEnterUsesConfigShell(t *testing.T) {
	h := newHarness(t, rootUser)
	config := filepath.Join(h.dir, ".config", "incarnate", "config.toml")
	if err := os.MkdirAll(filepath.Dir(config), 0o755); err != nil {
		t.Fatal(err)
	}
	h.ok("new", "--base", "bb", "s")
	h.ok("run", "s", "--", "test", "-e", "/bin/ash") // the busybox base has it
	for shell, want := range map[string]string{"/bin/ash": "/bin/ash", "/bin/nosuchshell": "/bin/sh"} {
		if err := os.WriteFile(config, []byte("shell = \""+shell+"\"\n"), 0o644); err != nil {
			t.Fatal(err)
		}
		cmd := h.command("enter", "s")
		cmd.Stdin = strings.NewReader("echo \"$0\"\n")
		out, err := cmd.Output()
		if err != nil || !strings.Contains(string(out), want) {
			t.Errorf("enter with shell = %s in config.toml: %q (%v); want %s", shell, out, err, want)
		}
	}
}
