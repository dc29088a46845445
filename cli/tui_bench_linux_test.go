package cli

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/creack/pty"
)

// BenchmarkTUIFirstFrame1000 times `incarnate` (the interface) from start
// until its first frame with the list of 1,000 sessions is drawn, against
// `incarnate ls` printing the same list, and reports each one's peak
// RSS (the rusage of a run of its own, see below). The pty answers the
// interface's terminal queries at once, as a terminal emulator would
// (terminalAnswers).
func BenchmarkTUIFirstFrame1000(b *testing.B) {
	s := newBench(b)
	thousandSessions(b, s)
	tuiCmd := func(wrap ...string) *exec.Cmd {
		cmd := s.h.command()
		cmd.Args = append(wrap, cmd.Args...)
		if len(wrap) > 0 {
			cmd.Path = wrap[0]
		}
		cmd.Env = append(cmd.Env, "TERM=xterm-256color", "XDG_CONFIG_HOME="+filepath.Join(s.h.dir, "config"))
		return cmd
	}
	tui := variant{"tui", func(b *testing.B) time.Duration {
		return firstFrame(b, tuiCmd(), []byte("s0999"))
	}}
	ls := &variant{"ls", timed(func() *exec.Cmd { return s.h.command("ls") })}
	capped(b, 30, tui, ls)

	// Peak RSS, in untimed runs of their own. Not from this process's
	// wait4: Go starts children with CLONE_VM|CLONE_VFORK, so a child's
	// ru_maxrss starts at the test binary's own high-water mark. A small
	// parent (busybox time) forks them instead and reports theirs.
	bb, err := exec.LookPath("busybox")
	if err != nil {
		b.Fatal(err)
	}
	rssFile := filepath.Join(s.h.dir, "rss")
	wrap := []string{bb, "time", "-f", "%M", "-o", rssFile}
	firstFrame(b, tuiCmd(wrap...), []byte("s0999"))
	tuiKiB := readKiB(b, rssFile)
	lsCmd := s.h.command("ls")
	lsCmd.Args, lsCmd.Path = append(wrap, lsCmd.Args...), bb
	if out, err := lsCmd.CombinedOutput(); err != nil {
		b.Fatalf("ls: %v\n%s", err, out)
	}
	lsKiB := readKiB(b, rssFile)
	b.ReportMetric(float64(tuiKiB)/1024, "MB_rss_tui")
	b.ReportMetric(float64(lsKiB)/1024, "MB_rss_ls")
}

func readKiB(b *testing.B, path string) int64 {
	data, err := os.ReadFile(path)
	if err != nil {
		b.Fatal(err)
	}
	n, err := strconv.ParseInt(strings.TrimSpace(string(data)), 10, 64)
	if err != nil {
		b.Fatalf("peak RSS %q: %v", data, err)
	}
	// busybox's %M takes ru_maxrss for pages and multiplies it by the
	// page size in KiB, but the kernel gives it in KiB already: a
	// `sleep` it reports at 5.3 MB peaks at 1.6 MB by /proc's VmHWM.
	return n / int64(os.Getpagesize()/1024)
}

// terminalAnswers are a terminal emulator's answers to what the
// interface asks: the background colour (Init), and DA1 (drainReplies).
var terminalAnswers = []struct{ query, answer string }{
	{"\x1b]11;?", "\x1b]11;rgb:0000/0000/0000\x1b\\"},
	{"\x1b[c", "\x1b[?62;22c"},
}

// answerInterface writes f the answers to the queries in out not answered yet;
// answered counts those answered, by query.
func answerInterface(f *os.File, out []byte, answered []int) {
	for i, qa := range terminalAnswers {
		for ; answered[i] < bytes.Count(out, []byte(qa.query)); answered[i]++ {
			f.WriteString(qa.answer)
		}
	}
}

// firstFrame starts cmd on an 80x24 pty and returns the time until want
// is on the screen; then it quits the interface with q.
func firstFrame(b *testing.B, cmd *exec.Cmd, want []byte) time.Duration {
	start := time.Now()
	f, err := pty.StartWithSize(cmd, &pty.Winsize{Rows: 24, Cols: 80})
	if err != nil {
		b.Fatal(err)
	}
	defer f.Close()
	var out []byte
	buf := make([]byte, 64<<10)
	answered := make([]int, len(terminalAnswers))
	var d time.Duration
	for d == 0 {
		n, err := f.Read(buf)
		if err != nil {
			b.Fatalf("the interface ended before drawing %q: %v\n%q", want, err, out)
		}
		out = append(out, buf[:n]...)
		answerInterface(f, out, answered)
		if bytes.Contains(out, want) {
			d = time.Since(start)
		}
	}
	f.WriteString("q")
	done := make(chan struct{})
	go func() {
		for {
			n, err := f.Read(buf)
			if err != nil {
				close(done)
				return
			}
			out = append(out, buf[:n]...)
			answerInterface(f, out, answered) // the DA1 of its drain, as it quits
		}
	}()
	if err := cmd.Wait(); err != nil {
		b.Fatalf("the interface: %v", err)
	}
	f.Close()
	<-done
	return d
}
