package cli

import (
	"os/exec"
	"path/filepath"
	"testing"
	"time"
)

// BenchmarkStageCost times commands the pre-runtime stage steps aside
// for (`--help`, `ls`) in the release build against a plain `go build`
// of the same source, which has no stage: the ratio is what the stage's
// look at the command line costs every other command. The interface
// starts as `ls` does (no arguments: the stage returns at once).
func BenchmarkStageCost(b *testing.B) {
	s := newBench(b)
	release := s.h.bin
	if staged, _ := entersThroughStage(release); !staged {
		release = releaseBuild(b, b.TempDir())
	}
	plain := filepath.Join(b.TempDir(), "plain")
	if out, err := exec.Command("go", "build", "-trimpath", "-o", plain, "..").CombinedOutput(); err != nil {
		b.Fatalf("go build: %v\n%s", err, out)
	}
	for i := 0; i < 10; i++ {
		s.h.ok("new", "--base", "bb", "cost"+string(rune('a'+i)))
	}
	s.h.ok("ls") // fills the caches
	for _, args := range [][]string{{"--help"}, {"ls"}} {
		b.Run(args[0], func(b *testing.B) {
			run := func(bin string) func(b *testing.B) time.Duration {
				return timed(func() *exec.Cmd { return withBin(s.h.command(args...), bin) })
			}
			measure(b, variant{"release", run(release)}, &variant{"plain", run(plain)})
		})
	}
}
