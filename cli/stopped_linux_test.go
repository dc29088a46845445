package cli

import (
	"bufio"
	"bytes"
	"strings"
	"testing"
)

// A command ended because its session was stopped from outside says so,
// and got SIGHUP first, with time for a trap to finish.
func TestStoppedFromOutsideIsSaid(t *testing.T) {
	forEachUser(t, func(t *testing.T, h *harness) {
		h.ok("new", "--base", "bb", "s")
		for _, tc := range []struct {
			stop []string
			why  string
		}{
			{[]string{"stop", "s"}, ""},
			{[]string{"reset", "--yes", "--force", "s"}, ", for a reset"},
		} {
			cmd := h.command("run", "s", "--", "sh", "-c", `trap 'echo hup > /root/hup; exit 4' HUP; echo ready; while :; do sleep 0.05; done`)
			out, err := cmd.StdoutPipe()
			if err != nil {
				t.Fatal(err)
			}
			var errOut bytes.Buffer
			cmd.Stderr = &errOut
			if err := cmd.Start(); err != nil {
				t.Fatal(err)
			}
			if line, _ := bufio.NewReader(out).ReadString('\n'); line != "ready\n" {
				t.Fatalf("before %v: %q", tc.stop, line)
			}
			h.ok(tc.stop...)
			_ = cmd.Wait()
			want := "incarnate: session s was stopped from outside" + tc.why + "\n"
			if cmd.ProcessState.ExitCode() != 4 || !strings.Contains(errOut.String(), want) {
				t.Errorf("after %v: status %d, stderr %q; want the HUP trap's 4 and %q", tc.stop, cmd.ProcessState.ExitCode(), errOut.String(), want)
			}
			if tc.why == "" { // a reset throws the trap's file away
				if out := h.ok("run", "--cwd", "/", "s", "--", "cat", "/root/hup"); out != "hup\n" {
					t.Errorf("the HUP trap left %q", out)
				}
			}
		}
	})
}

// A shell entered in a terminal that is stopped from outside leaves the
// message on the screen, not a bare exit.
func TestStoppedShellIsTold(t *testing.T) {
	h := newHarness(t, rootUser)
	h.ok("new", "--base", "bb", "s")
	s := startInTmux(t, h, 80, 24, "enter", "--shell", "/bin/sh", "s")
	s.tmux("set-option", "-t", s.name, "remain-on-exit", "on")
	s.waitText("[s]")
	h.ok("stop", "s")
	s.waitText("incarnate: session s was stopped from outside")
}

// A shell entered from the interface and stopped from outside: back in
// the list, the status line says so.
func TestInterfaceSaysStopped(t *testing.T) {
	h := newHarness(t, rootUser)
	h.ok("new", "--base", "bb", "s")
	s := startInTmux(t, h, 100, 24)
	s.waitText("LAST ENTERED")
	s.keys("Enter")
	s.waitText("[s]")
	h.ok("stop", "s")
	s.waitText("left s: session s was stopped from outside")
}
