package cli

import (
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/incarnate-dev/incarnate/layers"
)

// tuiScreen drives incarnate (the interface, or any command) in a tmux of its own (a private
// server socket), as a person would: keys in, the screen read back.
type tuiScreen struct {
	t    *testing.T
	sock string
	name string
}

// startInTmux runs `incarnate ARGS` as the harness's user in a tmux window
// of w x height: a real terminal emulator, whose screen capture-pane reads.
func startInTmux(t *testing.T, h *harness, w, height int, args ...string) *tuiScreen {
	t.Helper()
	return startInTmuxIn(t, h, "", w, height, args...)
}

// startInTmuxIn is startInTmux in directory dir ("" for the test's own).
func startInTmuxIn(t *testing.T, h *harness, dir string, w, height int, args ...string) *tuiScreen {
	t.Helper()
	return startScriptInTmux(t, h, dir, w, height, "exec "+incarnateLine(h, args...))
}

// incarnateLine is the shell command that runs `incarnate ARGS` as the
// harness's user.
func incarnateLine(h *harness, args ...string) string {
	run := fmt.Sprintf("%q", h.bin)
	if h.u.uid != os.Geteuid() {
		run = fmt.Sprintf("setpriv --reuid %d --regid %d --clear-groups %q", h.u.uid, h.u.gid, h.bin)
	}
	for _, a := range args {
		run += fmt.Sprintf(" %q", a)
	}
	return run
}

// startScriptInTmux runs the shell script run, in the harness's
// environment, in a tmux window of w x height.
func startScriptInTmux(t *testing.T, h *harness, dir string, w, height int, run string) *tuiScreen {
	t.Helper()
	if _, err := exec.LookPath("tmux"); err != nil {
		t.Fatal("tmux not found: the terminal tests need it (apt-get install tmux, as .ci/run does)")
	}
	script := filepath.Join(h.dir, "tmux.sh")
	env := append(h.env(), "XDG_CONFIG_HOME="+filepath.Join(h.dir, "config"), "SHELL=/bin/sh",
		"PATH=/usr/sbin:/usr/bin:/sbin:/bin", "TERM=xterm-256color")
	body := "#!/bin/sh\n"
	for _, kv := range env {
		body += fmt.Sprintf("export %q\n", kv)
	}
	if dir != "" {
		body += fmt.Sprintf("cd %q || exit 1\n", dir)
	}
	body += run + "\n"
	if err := os.WriteFile(script, []byte(body), 0o755); err != nil {
		t.Fatal(err)
	}
	s := &tuiScreen{t: t, sock: filepath.Join(h.dir, "tmux.sock"), name: "tui"}
	s.tmux("new-session", "-d", "-s", s.name, "-x", fmt.Sprint(w), "-y", fmt.Sprint(height), script)
	t.Cleanup(func() { _ = exec.Command("tmux", "-S", s.sock, "kill-server").Run() })
	return s
}

func (s *tuiScreen) tmux(args ...string) string {
	s.t.Helper()
	out, err := exec.Command("tmux", append([]string{"-S", s.sock}, args...)...).CombinedOutput()
	if err != nil {
		s.t.Fatalf("tmux %v: %v\n%s", args, err, out)
	}
	return string(out)
}

func (s *tuiScreen) capture() string {
	out, err := exec.Command("tmux", "-S", s.sock, "capture-pane", "-p", "-t", s.name).CombinedOutput()
	if err != nil {
		return "(no screen: " + err.Error() + ")"
	}
	return string(out)
}

// keys sends tmux key names (Enter, Tab, Escape, or single characters).
func (s *tuiScreen) keys(keys ...string) {
	s.tmux(append([]string{"send-keys", "-t", s.name}, keys...)...)
}

// typeText sends text literally.
func (s *tuiScreen) typeText(text string) { s.tmux("send-keys", "-t", s.name, "-l", text) }

// waitFor polls the screen until cond holds, failing with the screen
// after a generous bound.
func (s *tuiScreen) waitFor(what string, cond func(screen string) bool) string {
	s.t.Helper()
	var screen string
	for deadline := time.Now().Add(15 * time.Second); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		if screen = s.capture(); cond(screen) {
			return screen
		}
	}
	s.t.Fatalf("timed out waiting for %s; the screen:\n%s", what, screen)
	return ""
}

func (s *tuiScreen) waitText(text string) string {
	s.t.Helper()
	return s.waitFor(fmt.Sprintf("%q on the screen", text), func(sc string) bool { return strings.Contains(sc, text) })
}

// rowOf is the screen line of session name in the list.
func rowOf(screen, name string) []string {
	for _, l := range strings.Split(screen, "\n") {
		f := strings.Fields(strings.TrimLeft(l, " ›"))
		if len(f) > 0 && f[0] == name {
			return f
		}
	}
	return nil
}

// The whole round a user makes: new session in the dialog, a shell in it
// that writes a file, back to the list with the count of changed paths,
// then discard with its confirmation.
func TestTUIEndToEnd(t *testing.T) {
	h := newHarness(t, users()[0])
	base := "bb"
	if h.u.uid == 0 {
		base = layers.HostBase // the round: on the host base
	}
	s := startInTmux(t, h, 100, 30) // no command: the interface
	s.waitText("No sessions yet — press n")

	s.keys("n")
	s.waitText("New session")
	s.typeText("e2e")
	s.waitText("✓ free")
	s.keys("Tab")
	s.waitText("▸ Base")
	for i := 0; i < 5 && !strings.Contains(s.capture(), "["+base+"]"); i++ {
		before := s.capture()
		s.keys("Right")
		s.waitFor("the base picker to move", func(sc string) bool { return sc != before })
	}
	s.waitText("[" + base + "]")
	s.keys("Enter")
	s.waitText("created e2e on " + base)
	screen := s.waitFor("e2e chosen", func(sc string) bool { return strings.Contains(sc, "›e2e") })
	before := rowOf(screen, "e2e")

	s.keys("Enter")
	s.waitText("[e2e]") // the shell's prompt
	s.typeText("echo from-the-tui > /root/tui-file; exit 7")
	s.keys("Enter")
	screen = s.waitText("left e2e (exit status 7)")
	if b, err := os.ReadFile(filepath.Join(h.store, "sessions", "e2e", "upper", "root", "tui-file")); err != nil || string(b) != "from-the-tui\n" {
		t.Fatalf("the file written in the shell: %q, %v", b, err)
	}
	// The row shows what `ls --json` counts, once the figures are taken.
	var rows []lsRow
	if err := json.Unmarshal([]byte(h.ok("ls", "--json")), &rows); err != nil || len(rows) != 1 {
		t.Fatalf("ls --json: %v, %v", rows, err)
	}
	want := fmt.Sprint(rows[0].Changes)
	screen = s.waitFor("the row to show "+want+" changed paths", func(sc string) bool {
		r := rowOf(sc, "e2e")
		return len(r) >= 5 && r[4] == want
	})
	if after := rowOf(screen, "e2e"); rows[0].Changes < 1 || len(before) < 5 || after[4] == before[4] {
		t.Errorf("changed paths before %v, after %v, ls --json %d: want the shell's writes counted", before, after, rows[0].Changes)
	}

	s.keys("d")
	s.waitText("Discard session e2e")
	s.keys("y")
	s.waitText("discarded e2e")
	s.waitText("No sessions yet")
	if _, err := os.Lstat(filepath.Join(h.store, "sessions", "e2e")); err == nil {
		t.Error("e2e is still on disk")
	}
	s.keys("q")
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		if exec.Command("tmux", "-S", s.sock, "has-session", "-t", s.name).Run() != nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("q did not quit; the screen:\n%s", s.capture())
		}
	}
	waitFor(t, "the discarded session's purge", func() bool { return emptyDir(filepath.Join(h.store, "trash")) })
}
