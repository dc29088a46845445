package cli

import (
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"golang.org/x/sys/unix"

	"github.com/incarnate-dev/incarnate/internal/fsutil"
	"github.com/incarnate-dev/incarnate/internal/testbase"
	"github.com/incarnate-dev/incarnate/layers"
)

// committedBase commits, over bb, a base c0 of files, and over that
// base c1, which deletes one (a whiteout), replaces a directory (opaque),
// and adds a hard link, a file with an xattr and one with other owners.
func committedBase(t *testing.T, h *harness) {
	t.Helper()
	h.ok("new", "--base", "bb", "s0")
	h.ok("run", "s0", "--", "sh", "-c", "mkdir /data /opq /opq/sub && echo keep >/data/keep && echo gone >/data/gone && echo old >/opq/old")
	h.ok("commit", "s0", "c0")
	h.ok("new", "--base", "c0", "s1")
	h.ok("run", "s1", "--", "sh", "-c", "rm /data/gone && rm -r /opq && mkdir /opq && echo new >/opq/new && "+
		"mkdir /l && echo linked >/l/a && ln /l/a /l/b && echo x >/data/x && echo o >/data/owned")
	if h.ownersKept() {
		h.ok("run", "s1", "--", "chown", "1234:5678", "/data/owned")
	}
	x := filepath.Join(h.store, "sessions", "s1", "upper", "data", "x")
	if err := unix.Lsetxattr(x, "user.test", []byte("yes"), 0); err != nil {
		t.Fatalf("setxattr %s: %v", x, err)
	}
	h.ok("commit", "s1", "c1")
}

// sessionView is what a session on base sees of the changes
// committedBase made.
func sessionView(t *testing.T, h *harness, base string) string {
	t.Helper()
	s := "on-" + base
	h.ok("new", "--base", base, s)
	return h.ok("run", s, "--", "sh", "-c", "cat /data/keep /opq/new /l/b; ls /data /opq; stat -c '%h %n' /l/a; stat -c '%u:%g' /data/owned")
}

// wantSessionView is sessionView's answer; owners only where the user
// has ids to keep them with.
func wantSessionView(h *harness) string {
	owner := "0:0"
	if h.ownersKept() {
		owner = "1234:5678"
	}
	return "keep\nnew\nlinked\n/data:\nkeep\nowned\nx\n\n/opq:\nnew\n2 /l/a\n" + owner + "\n"
}

// ownersKept: the user's sessions can own files as ids other than root
// (root, or an ordinary user with sub-ids).
func (h *harness) ownersKept() bool { return h.u.uid == 0 || h.u.subIDs }

// mergedDigest is testbase.ExactDigest of base as overlayfs merges its
// layers, mounted read-only here: what every session on it starts from.
// Overlay's own xattrs are the kernel's to hide there, as they differ
// between a layer committed from an upper dir and one unpacked from a
// tarball. "" when the test cannot mount (not root).
func mergedDigest(t *testing.T, h *harness, base string) string {
	t.Helper()
	if os.Geteuid() != 0 {
		return ""
	}
	var b layers.Base
	if err := fsutil.ReadJSON(filepath.Join(h.store, "bases", base+".json"), &b); err != nil {
		t.Fatal(err)
	}
	lowers := make([]string, len(b.Layers))
	for i, id := range b.Layers {
		lowers[i] = filepath.Join(h.store, "layers", id)
	}
	opts := "lowerdir=" + strings.Join(lowers, ":")
	if b.Rootless {
		opts += ",userxattr"
	}
	mnt := t.TempDir()
	if err := unix.Mount("overlay", mnt, "overlay", unix.MS_RDONLY, opts); err != nil {
		t.Fatalf("mount the layers of %s: %v", base, err)
	}
	defer unix.Unmount(mnt, unix.MNT_DETACH)
	return testbase.ExactDigest(t, mnt)
}

// sameTree fails the test when pulled does not hold exactly what base
// does, as overlayfs shows them.
func sameTree(t *testing.T, h *harness, base, pulled string) {
	t.Helper()
	want := mergedDigest(t, h, base)
	if want == "" {
		t.Log("not root: the exact comparison of the trees is left out (it mounts them)")
		return
	}
	if got := mergedDigest(t, h, pulled); got != want {
		t.Errorf("base %s pulled back is not %s byte for byte:\n%s", pulled, base, lineDiff(want, got))
	}
}

// lineDiff lists the lines of want and got that the other lacks.
func lineDiff(want, got string) string {
	in := func(s string) map[string]bool {
		m := map[string]bool{}
		for _, l := range strings.Split(s, "\n") {
			m[l] = true
		}
		return m
	}
	w, g := in(want), in(got)
	var out []string
	for l := range w {
		if !g[l] {
			out = append(out, "- "+l)
		}
	}
	for l := range g {
		if !w[l] {
			out = append(out, "+ "+l)
		}
	}
	return strings.Join(out, "\n")
}

// base push, for every user: a committed base with whiteouts, an opaque
// directory, a hard link, an xattr and other owners comes back byte for
// byte through a push and a pull, gzip and zstd; a second push sends no
// blob; a pulled base pushed to another repository mounts its layers
// there; the host base is refused with what to do instead.
func TestBasePush(t *testing.T) {
	forEachUser(t, func(t *testing.T, h *harness) {
		reg := newTestRegistry(t)
		env := []string{"DOCKER_CONFIG=" + reg.dockerConfig(t, h.dir)}
		committedBase(t, h)
		for _, comp := range []string{"gzip", "zstd"} {
			ref := reg.host + "/test/c1:" + comp
			out, errOut, status := withEnv(h, env, "base", "push", "--compression", comp, "--label", "org.example=yes", "c1", ref)
			if status != 0 || !strings.Contains(out, "pushed base c1 to "+ref) {
				t.Fatalf("base push --compression %s: status %d\nstdout %s\nstderr %s", comp, status, out, errOut)
			}
			if _, errOut, status := withEnv(h, env, "base", "pull", ref, "p-"+comp); status != 0 {
				t.Fatalf("pull back (%s): status %d, %s", comp, status, errOut)
			}
			sameTree(t, h, "c1", "p-"+comp)
			if got, want := sessionView(t, h, "p-"+comp), wantSessionView(h); got != want {
				t.Errorf("a session on the pushed and pulled base (%s) sees\n%q\nwant\n%q", comp, got, want)
			}
		}
		checkConfig(t, reg, reg.host+"/test/c1:gzip")
		if x := pulledXattr(t, h, "data/x", "user.test"); x != "yes" {
			t.Errorf("data/x's user.test in a pulled layer: %q, want yes", x)
		}

		up, _ := reg.counts()
		if _, errOut, status := withEnv(h, env, "base", "push", "--label", "org.example=yes", "c1", reg.host+"/test/c1:gzip"); status != 0 {
			t.Fatalf("second push: status %d, %s", status, errOut)
		}
		if again, _ := reg.counts(); again != up {
			t.Errorf("a second push of the unchanged base sent %d blobs, want none", again-up)
		}

		up, mounts := reg.counts()
		if _, errOut, status := withEnv(h, env, "base", "push", "p-gzip", reg.host+"/other/copy:1"); status != 0 {
			t.Fatalf("push of the pulled base to another repository: status %d, %s", status, errOut)
		}
		up2, mounts2 := reg.counts()
		if up2-up != 1 || mounts2-mounts != 3 {
			t.Errorf("push of a pulled base to another repository: %d uploads, %d mounts; want 1 (its config) and 3 (its layers)", up2-up, mounts2-mounts)
		}

		_, errOut, status := withEnv(h, env, "base", "push", "host", reg.host+"/test/host:1")
		if status == 0 || !strings.Contains(errOut, "host base is this machine's own /") || !strings.Contains(errOut, "commit your session onto an imported base") {
			t.Errorf("push of the host base: status %d, stderr %q; want it refused, saying what to do", status, errOut)
		}
	})
}

// checkConfig checks the config of the image pushed as ref: the label,
// this machine's platform, and a history entry for each layer that
// says what made it.
func checkConfig(t *testing.T, reg *testRegistry, ref string) {
	t.Helper()
	r, err := name.ParseReference(ref)
	if err != nil {
		t.Fatal(err)
	}
	img, err := remote.Image(r, remote.WithAuth(&authn.Basic{Username: registryUser, Password: registryPass}))
	if err != nil {
		t.Fatal(err)
	}
	cfg, err := img.ConfigFile()
	if err != nil {
		t.Fatal(err)
	}
	var made []string
	for _, h := range cfg.History {
		made = append(made, h.CreatedBy)
	}
	want := []string{"incarnate base import ", "incarnate commit s0 c0", "incarnate commit s1 c1"}
	if cfg.Config.Labels["org.example"] != "yes" || cfg.OS != "linux" || cfg.Architecture != runtime.GOARCH ||
		len(made) != 3 || !strings.HasPrefix(made[0], want[0]) || made[1] != want[1] || made[2] != want[2] || len(cfg.RootFS.DiffIDs) != 3 {
		t.Errorf("pushed config: labels %v, %s/%s, history %q, %d diff_ids; want org.example=yes, linux/%s, %q..., 3",
			cfg.Config.Labels, cfg.OS, cfg.Architecture, made, len(cfg.RootFS.DiffIDs), runtime.GOARCH, want)
	}
}
