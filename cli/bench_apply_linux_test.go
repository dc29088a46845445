package cli

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"
)

// BenchmarkApply10k applies 10,000 new files of a root session on the
// host base to the host (--keep, so every round applies them again into
// an emptied directory), against `cp -a` of the same tree from the upper
// dir, round by round.
func BenchmarkApply10k(b *testing.B) {
	if os.Geteuid() != 0 {
		b.Skip("needs root, for the host base")
	}
	t := &testing.T{}
	h := newHarness(t, rootUser)
	if bin := os.Getenv("INCARNATE_BIN"); bin != "" {
		h.bin = bin
	}
	target := filepath.Join(h.dir, "applied")
	h.ok("new", "a")
	h.ok("run", "a", "--", "sh", "-c", fmt.Sprintf(
		`mkdir -p %s && cd %s && for d in $(seq 100); do mkdir d$d; for f in $(seq 100); do echo "file $f of $d" > d$d/f$f; done; done`, target, target))
	src := filepath.Join(h.store, "sessions", "a", "upper") + target
	copyDst := filepath.Join(h.dir, "copied")
	times := map[string][]time.Duration{}
	rounds := min(b.N, 5)
	b.ResetTimer()
	for i := 0; i < rounds; i++ {
		for _, v := range []string{"apply", "cp"} {
			for _, d := range []string{target, copyDst} {
				if err := os.RemoveAll(d); err != nil {
					b.Fatal(err)
				}
			}
			start := time.Now()
			if v == "apply" {
				h.ok("apply", "--yes", "--keep", "a", target)
			} else if out, err := exec.Command("cp", "-a", src, copyDst).CombinedOutput(); err != nil {
				b.Fatalf("cp -a: %v\n%s", err, out)
			}
			times[v] = append(times[v], time.Since(start))
		}
	}
	b.StopTimer()
	a, c := median(times["apply"]), median(times["cp"])
	b.ReportMetric(0, "ns/op")
	b.ReportMetric(float64(a)/float64(c), "x_cp")
	if b.N > 1 {
		b.Logf("apply of 10,000 files median %.0f ms; cp -a %.0f ms: ratio %.2f× (%d rounds)", ms(a), ms(c), float64(a)/float64(c), rounds)
	}
}
