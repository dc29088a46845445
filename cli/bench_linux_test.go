package cli

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"testing"
	"time"

	"github.com/creack/pty"
)

// variant is one way of starting something in a fresh sandbox over the
// same busybox base, timed from start to the moment done returns.
type variant struct {
	name string
	run  func(b *testing.B) time.Duration
}

// timed runs a command to completion and returns how long it took.
func timed(mk func() *exec.Cmd) func(b *testing.B) time.Duration {
	return func(b *testing.B) time.Duration {
		cmd := mk()
		start := time.Now()
		if out, err := cmd.CombinedOutput(); err != nil {
			b.Fatalf("%v: %v\n%s", cmd.Args, err, out)
		}
		return time.Since(start)
	}
}

// benchSetup is a root harness with session "bench" and the baselines.
type benchSetup struct {
	h        *harness
	layer    string
	shellDir string
}

func newBench(b *testing.B) *benchSetup {
	if os.Geteuid() != 0 {
		b.Skip("the baselines (unshare + mount) need root")
	}
	t := &testing.T{}
	h := newHarness(t, rootUser)
	if bin := os.Getenv("INCARNATE_BIN"); bin != "" {
		h.bin = bin // the real binary, as `make bench` builds it
	}
	h.ok("new", "--base", "bb", "bench")
	s := &benchSetup{h: h, layer: onlyLayer(t, h), shellDir: filepath.Join(h.dir, "shell")}
	for _, d := range []string{"upper", "work", "root"} {
		if err := os.MkdirAll(filepath.Join(s.shellDir, d), 0o755); err != nil {
			b.Fatal(err)
		}
	}
	return s
}

// bwrap runs /bin/true with the same namespaces (mount, pid, uts, ipc)
// over the same base, or is nil where bubblewrap is not installed.
func (s *benchSetup) bwrap() *variant {
	if _, err := exec.LookPath("bwrap"); err != nil {
		return nil
	}
	return &variant{"bwrap", timed(func() *exec.Cmd {
		return exec.Command("bwrap", "--unshare-pid", "--unshare-uts", "--unshare-ipc",
			"--ro-bind", s.layer, "/", "--proc", "/proc", "--dev", "/dev", "/bin/true")
	})}
}

// shell does the same namespaces, overlay, proc and pivot_root by hand.
func (s *benchSetup) shell() variant {
	d := s.shellDir
	script := `mount -t overlay overlay -o lowerdir=` + s.layer + `,upperdir=` + d + `/upper,workdir=` + d + `/work ` + d + `/root &&
mount -t proc proc ` + d + `/root/proc && cd ` + d + `/root && mkdir -p .oldroot && pivot_root . .oldroot &&
umount -l /.oldroot && exec /bin/true`
	return variant{"shell", timed(func() *exec.Cmd {
		return exec.Command("unshare", "--mount", "--pid", "--uts", "--ipc", "--fork", "--propagation", "slave", "sh", "-c", script)
	})}
}

// beforeBin is another build of incarnate (INCARNATE_BEFORE_BIN, `make
// bench BEFORE=FILE`) timed beside this one, for a change's figures before
// and after in one run. It works on the same store, in sessions of its own.
func beforeBin() string { return os.Getenv("INCARNATE_BEFORE_BIN") }

// withBin is cmd run by another binary.
func withBin(cmd *exec.Cmd, bin string) *exec.Cmd {
	cmd.Path, cmd.Args[0] = bin, bin
	return cmd
}

func bare() variant {
	return variant{"bare", timed(func() *exec.Cmd { return exec.Command("/bin/true") })}
}

// measure runs every variant b.N times, interleaved round by round so that
// a noisy neighbour slows all of them alike, and reports the subject's
// median and its ratio to each other variant's median.
func measure(b *testing.B, subject variant, others ...*variant) {
	vs := []variant{subject}
	for _, o := range others {
		if o != nil {
			vs = append(vs, *o)
		}
	}
	times := make(map[string][]time.Duration)
	faults := make(map[string][]time.Duration) // counts, in a Duration for median
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		for j := range vs {
			v := vs[(i+j)%len(vs)]
			before := pageFaults(b)
			times[v.name] = append(times[v.name], v.run(b))
			faults[v.name] = append(faults[v.name], time.Duration(pageFaults(b)-before))
		}
	}
	b.StopTimer()
	m := median(times[subject.name])
	b.ReportMetric(ms(m), "ms/"+subject.name)
	b.ReportMetric(float64(median(faults[subject.name])), "faults/"+subject.name)
	b.ReportMetric(0, "ns/op")
	for _, v := range vs[1:] {
		base := median(times[v.name])
		b.ReportMetric(float64(m)/float64(base), "x_"+v.name)
		if b.N > 1 { // not the framework's one-round probe
			b.Logf("%s median %.2f ms, %d faults; %s median %.2f ms, %d faults; ratio %.2f×", subject.name, ms(m), median(faults[subject.name]),
				v.name, ms(base), median(faults[v.name]), float64(m)/float64(base))
		}
	}
}

// pageFaults is the machine's count of page faults so far. Every process
// a variant starts counts, a keeper that outlives its client among them,
// which a child's rusage would miss; the rest of an idle machine adds a
// few.
func pageFaults(b *testing.B) int64 {
	data, err := os.ReadFile("/proc/vmstat")
	if err != nil {
		b.Fatal(err)
	}
	_, rest, ok := bytes.Cut(data, []byte("\npgfault "))
	if !ok {
		b.Fatal("no pgfault in /proc/vmstat")
	}
	line, _, _ := bytes.Cut(rest, []byte("\n"))
	n, err := strconv.ParseInt(string(line), 10, 64)
	if err != nil {
		b.Fatal(err)
	}
	return n
}

func median(ds []time.Duration) time.Duration {
	s := slices.Clone(ds)
	slices.Sort(s)
	return s[len(s)/2]
}

func ms(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }

// BenchmarkRunTrueCold times `incarnate run S -- /bin/true` with no keeper
// alive: the keeper is started, builds the root, runs /bin/true and goes.
// Run it with a fixed count: go test -bench . -benchtime 200x.
func BenchmarkRunTrueCold(b *testing.B) {
	s := newBench(b)
	cold := variant{"incarnate", func(b *testing.B) time.Duration {
		d := timed(func() *exec.Cmd { return s.h.command("run", "bench", "--", "/bin/true") })(b)
		// The keeper exits just after its last child; wait until it has,
		// so the next round is cold too (not timed).
		for !sessionFree(s.h, "bench") {
			time.Sleep(time.Millisecond)
		}
		return d
	}}
	shell, bareV := s.shell(), bare()
	var before *variant
	if bin := beforeBin(); bin != "" {
		s.h.ok("new", "--base", "bb", "bench-before")
		before = &variant{"before", func(b *testing.B) time.Duration {
			d := timed(func() *exec.Cmd { return withBin(s.h.command("run", "bench-before", "--", "/bin/true"), bin) })(b)
			for !sessionFree(s.h, "bench-before") {
				time.Sleep(time.Millisecond)
			}
			return d
		}}
	}
	measure(b, cold, s.bwrap(), &shell, &bareV, s.cFloor(b, "cfloor"), before)
}

// BenchmarkRunTrueWarm times the same command while a shell is inside: the
// keeper is set up already and only forks and execs.
func BenchmarkRunTrueWarm(b *testing.B) {
	s := newBench(b)
	holder := s.h.command("run", "bench", "--", "sleep", "100000")
	if err := holder.Start(); err != nil {
		b.Fatal(err)
	}
	defer func() { _ = holder.Process.Kill(); _ = holder.Wait() }()
	for s.h.ok("run", "bench", "--", "true") != "" {
	}
	warm := variant{"incarnate", timed(func() *exec.Cmd { return s.h.command("run", "bench", "--", "/bin/true") })}
	var before *variant
	if bin := beforeBin(); bin != "" {
		s.h.ok("new", "--base", "bb", "bench-before")
		holder := withBin(s.h.command("run", "bench-before", "--", "sleep", "100000"), bin)
		if err := holder.Start(); err != nil {
			b.Fatal(err)
		}
		defer func() { _ = holder.Process.Kill(); _ = holder.Wait() }()
		for withBin(s.h.command("run", "bench-before", "--", "true"), bin).Run() != nil {
		}
		before = &variant{"before", timed(func() *exec.Cmd { return withBin(s.h.command("run", "bench-before", "--", "/bin/true"), bin) })}
	}
	measure(b, warm, s.bwrap(), before)
}

// BenchmarkEnterToPrompt times `incarnate enter` until the first byte of
// the prompt arrives on its pty, cold (no keeper) and warm (a shell is
// already inside), against bwrap running /bin/true.
func BenchmarkEnterToPrompt(b *testing.B) {
	for _, warm := range []bool{false, true} {
		name := map[bool]string{false: "cold", true: "warm"}[warm]
		b.Run(name, func(b *testing.B) {
			s := newBench(b)
			if warm {
				holder := s.h.command("run", "bench", "--", "sleep", "100000")
				if err := holder.Start(); err != nil {
					b.Fatal(err)
				}
				defer func() { _ = holder.Process.Kill(); _ = holder.Wait() }()
			}
			enter := variant{"enter", func(b *testing.B) time.Duration {
				d := toPrompt(b, s.h.command("enter", "--shell", "/bin/sh", "bench"))
				for !warm && !sessionFree(s.h, "bench") {
					time.Sleep(time.Millisecond)
				}
				return d
			}}
			measure(b, enter, s.bwrap())
		})
	}
}

// toPrompt starts cmd on a pty, times the first byte it prints, then ends
// it by hanging up. That byte must come from the shell (its prompt, or the
// terminal queries busybox's line editor sends first): an error message of
// incarnate's would be quick too.
func toPrompt(b *testing.B, cmd *exec.Cmd) time.Duration {
	start := time.Now()
	f, err := pty.StartWithSize(cmd, &pty.Winsize{Rows: 24, Cols: 80})
	if err != nil {
		b.Fatal(err)
	}
	// Like a terminal, answer the cursor position requests incarnate's
	// start-up and the shell send; time the first byte of the prompt.
	var seen []byte
	buf := make([]byte, 256)
	for !bytes.Contains(seen, []byte("[bench]")) {
		n, err := f.Read(buf)
		if err != nil {
			b.Fatalf("no prompt (%v); got %q", err, seen)
		}
		answerQueries(f, buf[:n])
		seen = append(seen, buf[:n]...)
	}
	d := time.Since(start)
	f.Close()
	_ = cmd.Wait()
	return d
}

// BenchmarkRelay1G times 1 GiB through `run S -- cat` without a terminal,
// its streams relayed through pipes, against the same 1 GiB through a
// plain `cat | cat` pipeline. Run it with a small count: -benchtime 5x.
func BenchmarkRelay1G(b *testing.B) {
	s := newBench(b)
	src := filepath.Join(s.h.dir, "1g")
	f, err := os.Create(src)
	if err != nil {
		b.Fatal(err)
	}
	chunk := bytes.Repeat([]byte("incarnate relay "), 1<<16) // 1 MiB
	for i := 0; i < 1024; i++ {
		if _, err := f.Write(chunk); err != nil {
			b.Fatal(err)
		}
	}
	f.Close()
	defer os.Remove(src)
	// A shell inside keeps the keeper up: the stream is what is timed.
	holder := s.h.command("run", "bench", "--", "sleep", "100000")
	if err := holder.Start(); err != nil {
		b.Fatal(err)
	}
	defer func() { _ = holder.Process.Kill(); _ = holder.Wait() }()
	streamed := func(mk func() *exec.Cmd) func(b *testing.B) time.Duration {
		return func(b *testing.B) time.Duration {
			in, err := os.Open(src)
			if err != nil {
				b.Fatal(err)
			}
			defer in.Close()
			cmd := mk()
			cmd.Stdin = in // stdout and stderr: /dev/null
			start := time.Now()
			if err := cmd.Run(); err != nil {
				b.Fatalf("%v: %v", cmd.Args, err)
			}
			return time.Since(start)
		}
	}
	relay := variant{"incarnate", streamed(func() *exec.Cmd { return s.h.command("run", "bench", "--", "cat") })}
	pipe := variant{"pipe", streamed(func() *exec.Cmd { return exec.Command("sh", "-c", "cat | cat") })}
	measure(b, relay, &pipe)
}
