package cli

import (
	"crypto/rand"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"github.com/incarnate-dev/incarnate/internal/fsutil"
	"github.com/incarnate-dev/incarnate/session"
)

// The store benchmarks time one incarnate command against the plain tool
// doing the same work on the same data, interleaved round by round.
// Heavy ones cap their rounds whatever -benchtime says.

// fillTree writes n small files into dir, 1000 to a subdirectory.
func fillTree(b *testing.B, dir string, n int) {
	for i := 0; i < n; i++ {
		sub := filepath.Join(dir, fmt.Sprintf("d%03d", i/1000))
		if i%1000 == 0 {
			if err := os.MkdirAll(sub, 0o755); err != nil {
				b.Fatal(err)
			}
		}
		if err := os.WriteFile(filepath.Join(sub, fmt.Sprintf("f%05d", i)), []byte("x\n"), 0o644); err != nil {
			b.Fatal(err)
		}
	}
}

// capped runs measure with at most n rounds.
func capped(b *testing.B, n int, subject variant, others ...*variant) {
	if b.N > n {
		b.N = n
	}
	measure(b, subject, others...)
}

// BenchmarkRm20k: `incarnate rm` of a session holding 20,000 small files
// against `rm -rf` of the same tree. rm only renames into trash/ and
// leaves the deletion to a background process.
func BenchmarkRm20k(b *testing.B) {
	s := newBench(b)
	st, err := session.Open(s.h.store)
	if err != nil {
		b.Fatal(err)
	}
	spare := filepath.Join(s.h.dir, "spare")
	incarnate := variant{"incarnate", func(b *testing.B) time.Duration {
		if _, err := st.Create("doomed", "bb", session.Options{}); err != nil {
			b.Fatal(err)
		}
		fillTree(b, filepath.Join(st.Dir("doomed"), "upper"), 20000)
		d := timed(func() *exec.Cmd { return s.h.command("rm", "--yes", "doomed") })(b)
		for !emptyDir(filepath.Join(s.h.store, "trash")) {
			time.Sleep(10 * time.Millisecond) // untimed: the next round starts clean
		}
		return d
	}}
	rmrf := &variant{"rm-rf", func(b *testing.B) time.Duration {
		fillTree(b, spare, 20000)
		return timed(func() *exec.Cmd { return exec.Command("rm", "-rf", spare) })(b)
	}}
	capped(b, 10, incarnate, rmrf)
}

// BenchmarkLs1000: `incarnate ls` with 1,000 sessions against `ls -l` of
// the sessions directory. Sizes and change counts come from each
// session's cache, filled by the first ls (not timed).
func BenchmarkLs1000(b *testing.B) {
	s := newBench(b)
	thousandSessions(b, s)
	ls := variant{"incarnate", timed(func() *exec.Cmd { return s.h.command("ls") })}
	lsl := &variant{"ls-l", timed(func() *exec.Cmd { return exec.Command("ls", "-l", filepath.Join(s.h.store, "sessions")) })}
	capped(b, 30, ls, lsl)
}

// BenchmarkClone1G: `incarnate clone` of a session whose upper dir holds
// 1 GiB against `cp -a` of the same upper dir.
func BenchmarkClone1G(b *testing.B) {
	s := newBench(b)
	st, err := session.Open(s.h.store)
	if err != nil {
		b.Fatal(err)
	}
	if _, err := st.Create("big", "bb", session.Options{}); err != nil {
		b.Fatal(err)
	}
	upper := filepath.Join(st.Dir("big"), "upper")
	chunk := make([]byte, 16<<20)
	for i := 0; i < 64; i++ {
		_, _ = rand.Read(chunk)
		if err := os.WriteFile(filepath.Join(upper, fmt.Sprintf("blob%02d", i)), chunk, 0o644); err != nil {
			b.Fatal(err)
		}
	}
	copyDst := filepath.Join(s.h.dir, "cp-copy")
	clone := variant{"incarnate", func(b *testing.B) time.Duration {
		d := timed(func() *exec.Cmd { return s.h.command("clone", "big", "copy") })(b)
		s.h.ok("rm", "--yes", "copy")
		for !emptyDir(filepath.Join(s.h.store, "trash")) {
			time.Sleep(10 * time.Millisecond)
		}
		return d
	}}
	cp := &variant{"cp-a", func(b *testing.B) time.Duration {
		d := timed(func() *exec.Cmd { return exec.Command("cp", "-a", upper, copyDst) })(b)
		if err := fsutil.RemoveTree(copyDst); err != nil {
			b.Fatal(err)
		}
		return d
	}}
	capped(b, 5, clone, cp)
}

// thousandSessions fills the bench store with 1,000 sessions of five
// changed files each, and lists them once so every cache is warm.
func thousandSessions(b *testing.B, s *benchSetup) {
	st, err := session.Open(s.h.store)
	if err != nil {
		b.Fatal(err)
	}
	for i := 0; i < 1000; i++ {
		name := fmt.Sprintf("s%04d", i)
		if _, err := st.Create(name, "bb", session.Options{}); err != nil {
			b.Fatal(err)
		}
		fillTree(b, filepath.Join(st.Dir(name), "upper"), 5)
	}
	s.h.ok("ls")
}
