package cli

import (
	"archive/tar"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/compression"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
)

// BenchmarkPull100M: `incarnate base pull` of a 100 MB image of three
// layers from the in-process test registry, to a base a session can
// start on, against crane fetching the same image from the same registry
// and unpacking it as tar does (`crane export REF - | tar -x`), both
// with the credentials of a DOCKER_CONFIG. The goal is at most 1.2×.
func BenchmarkPull100M(b *testing.B) {
	crane, err := exec.LookPath("crane")
	if err != nil {
		b.Skip("crane is not installed (see .ci/run): it is the baseline")
	}
	s := newBench(b)
	t := &testing.T{}
	reg := newTestRegistry(t)
	b.Cleanup(reg.srv.Close)
	env := []string{"DOCKER_CONFIG=" + reg.dockerConfig(t, s.h.dir)}
	img, err := mutate.AppendLayers(empty.Image, busyboxLayer(t, compression.GZip),
		filesLayer(t, "big", 400, 100<<10), filesLayer(t, "mid", 100, 300<<10), filesLayer(t, "small", 1000, 30<<10))
	if err != nil {
		b.Fatal(err)
	}
	ref := reg.push(t, "bench/pull:1", img)
	pull := variant{"incarnate", func(b *testing.B) time.Duration {
		cmd := s.h.command("base", "pull", ref, "pulled")
		cmd.Env = append(cmd.Env, env...)
		d := timed(func() *exec.Cmd { return cmd })(b)
		s.h.ok("base", "rm", "--yes", "pulled") // untimed: each round pulls every layer
		return d
	}}
	dir := filepath.Join(s.h.dir, "crane-root")
	cranePull := variant{"crane", func(b *testing.B) time.Duration {
		if err := os.Mkdir(dir, 0o755); err != nil {
			b.Fatal(err)
		}
		cmd := exec.Command("sh", "-c", `"$0" export "$1" - | tar -x -C "$2"`, crane, ref, dir)
		cmd.Env = append(os.Environ(), env...)
		d := timed(func() *exec.Cmd { return cmd })(b)
		if err := os.RemoveAll(dir); err != nil {
			b.Fatal(err)
		}
		return d
	}}
	capped(b, 10, pull, &cranePull)
}

// filesLayer is a layer of n files of size bytes under dir/, of random
// hex: data that compresses about as well as binaries do.
func filesLayer(t *testing.T, dir string, n, size int) v1.Layer {
	entries := []tarEntry{{name: dir + "/", typ: tar.TypeDir}}
	raw := make([]byte, size/2)
	for i := 0; i < n; i++ {
		rand.Read(raw)
		entries = append(entries, tarEntry{name: fmt.Sprintf("%s/f%04d", dir, i), body: hex.EncodeToString(raw)})
	}
	return layerOf(t, compression.GZip, entries...)
}
