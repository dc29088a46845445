package cli

import (
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"testing"
	"time"
)

// variant is one way of running /bin/true in a fresh sandbox over the
// same busybox base.
type variant struct {
	name string
	cmd  func() *exec.Cmd
}

// BenchmarkRunTrue times `incarnate run S -- /bin/true` against baselines
// measured in the same run, interleaved round by round so that a noisy
// neighbour slows all of them alike, and reports median ratios. Run it
// with a fixed count: go test -bench RunTrue -benchtime 200x.
func BenchmarkRunTrue(b *testing.B) {
	if os.Geteuid() != 0 {
		b.Skip("the baselines (unshare + mount) need root")
	}
	t := &testing.T{}
	h := newHarness(t, user{"root", 0, 0})
	if bin := os.Getenv("INCARNATE_BIN"); bin != "" {
		h.bin = bin // the real binary, as `make bench` builds it
	}
	h.ok("new", "--base", "bb", "bench")
	layer := onlyLayer(t, h)
	shellDir := filepath.Join(h.dir, "shell")
	for _, d := range []string{"upper", "work", "root"} {
		if err := os.MkdirAll(filepath.Join(shellDir, d), 0o755); err != nil {
			b.Fatal(err)
		}
	}
	variants := []variant{
		{"incarnate", func() *exec.Cmd { return h.command("run", "bench", "--", "/bin/true") }},
		{"shell", func() *exec.Cmd {
			// The same namespaces, overlay, proc and pivot_root, by hand.
			script := `mount -t overlay overlay -o lowerdir=` + layer + `,upperdir=` + shellDir + `/upper,workdir=` + shellDir + `/work ` + shellDir + `/root &&
mount -t proc proc ` + shellDir + `/root/proc && cd ` + shellDir + `/root && mkdir -p .oldroot && pivot_root . .oldroot &&
umount -l /.oldroot && exec /bin/true`
			return exec.Command("unshare", "--mount", "--pid", "--uts", "--ipc", "--fork", "--propagation", "slave", "sh", "-c", script)
		}},
		{"bare", func() *exec.Cmd { return exec.Command("/bin/true") }},
	}
	if _, err := exec.LookPath("bwrap"); err == nil {
		variants = append(variants, variant{"bwrap", func() *exec.Cmd {
			return exec.Command("bwrap", "--unshare-pid", "--unshare-uts", "--unshare-ipc",
				"--ro-bind", layer, "/", "--proc", "/proc", "--dev", "/dev", "/bin/true")
		}})
	}
	times := make(map[string][]time.Duration)
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		for j := range variants {
			v := variants[(i+j)%len(variants)]
			cmd := v.cmd()
			start := time.Now()
			if out, err := cmd.CombinedOutput(); err != nil {
				b.Fatalf("%s: %v\n%s", v.name, err, out)
			}
			times[v.name] = append(times[v.name], time.Since(start))
		}
	}
	b.StopTimer()
	reportRatios(b, times, "incarnate")
}

// reportRatios reports the median of subject and its ratio to each of the
// other variants' medians.
func reportRatios(b *testing.B, times map[string][]time.Duration, subject string) {
	median := func(ds []time.Duration) time.Duration {
		s := slices.Clone(ds)
		slices.Sort(s)
		return s[len(s)/2]
	}
	m := median(times[subject])
	b.ReportMetric(float64(m.Microseconds())/1000, "ms/"+subject)
	b.ReportMetric(0, "ns/op")
	for name, ds := range times {
		if name == subject {
			continue
		}
		base := median(ds)
		b.ReportMetric(float64(m)/float64(base), "x_"+name)
		if b.N > 1 { // not the framework's one-round probe
			b.Logf("%s median %.2f ms; %s median %.2f ms; ratio %.2f×", subject, ms(m), name, ms(base), float64(m)/float64(base))
		}
	}
}

func ms(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }
