package cli

import (
	"archive/tar"
	"bytes"
	"context"
	"encoding/base64"
	"fmt"
	"io"
	"io/fs"
	"log"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/compression"
	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/registry"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
	"golang.org/x/sys/unix"

	"github.com/incarnate-dev/incarnate/internal/testbase"
	"github.com/incarnate-dev/incarnate/layers"
)

// testRegistry is go-containerregistry's registry in an httptest server
// behind basic auth. It counts the blobs it serves, the uploads it takes
// and the mounts it makes, and can damage one blob's bytes (tamper) or
// close the connection half-way through it (cut), each by digest. Its
// blobs belong to repositories, as registry:2's do, so that a blob of
// another repository is there only when mounted or sent again.
type testRegistry struct {
	srv         *httptest.Server
	host        string
	blobs       *repoBlobs
	mu          sync.Mutex
	blobGets    int
	uploads     int
	mounts      int
	tamper, cut map[string]bool
}

const registryUser, registryPass = "incarnate", "s3cret"

func newTestRegistry(t *testing.T) *testRegistry {
	t.Helper()
	r := &testRegistry{tamper: map[string]bool{}, cut: map[string]bool{}, blobs: &repoBlobs{m: map[string][]byte{}}}
	inner := registry.New(registry.Logger(log.New(io.Discard, "", 0)), registry.WithBlobHandler(r.blobs))
	r.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		if u, p, ok := req.BasicAuth(); !ok || u != registryUser || p != registryPass {
			w.Header().Set("WWW-Authenticate", `Basic realm="test"`)
			w.WriteHeader(http.StatusUnauthorized)
			return
		}
		r.serve(inner, w, req)
	}))
	t.Cleanup(r.srv.Close)
	r.host = strings.TrimPrefix(r.srv.URL, "http://")
	return r
}

func (r *testRegistry) serve(inner http.Handler, w http.ResponseWriter, req *http.Request) {
	repo, digest, isBlob := strings.Cut(strings.TrimPrefix(req.URL.Path, "/v2/"), "/blobs/")
	if isBlob && req.Method != http.MethodGet {
		r.upload(inner, w, req, repo)
		return
	}
	if !isBlob {
		inner.ServeHTTP(w, req)
		return
	}
	r.mu.Lock()
	r.blobGets++
	tamper, cut := r.tamper[digest], r.cut[digest]
	r.mu.Unlock()
	if !tamper && !cut {
		inner.ServeHTTP(w, req)
		return
	}
	rec := httptest.NewRecorder()
	inner.ServeHTTP(rec, req)
	body := rec.Body.Bytes()
	w.Header().Set("Content-Length", fmt.Sprint(len(body)))
	w.WriteHeader(rec.Code)
	if tamper {
		body = bytes.Clone(body)
		body[len(body)/2] ^= 0xff
		w.Write(body)
		return
	}
	w.Write(body[:len(body)/2])
	w.(http.Flusher).Flush()
	conn, _, err := w.(http.Hijacker).Hijack()
	if err == nil {
		conn.Close()
	}
}

// upload counts the uploads the registry finishes (a PUT, or a POST
// with the whole blob) and answers mounts (a POST with mount= and from=)
// of a blob that the repository named in from holds.
func (r *testRegistry) upload(inner http.Handler, w http.ResponseWriter, req *http.Request, repo string) {
	q := req.URL.Query()
	if d, from := q.Get("mount"), q.Get("from"); req.Method == http.MethodPost && d != "" && from != "" && r.blobs.mount(from, repo, d) {
		r.mu.Lock()
		r.mounts++
		r.mu.Unlock()
		w.Header().Set("Location", "/v2/"+repo+"/blobs/"+d)
		w.Header().Set("Docker-Content-Digest", d)
		w.WriteHeader(http.StatusCreated)
		return
	}
	if q.Get("digest") != "" && (req.Method == http.MethodPut || req.Method == http.MethodPost) {
		r.mu.Lock()
		r.uploads++
		r.mu.Unlock()
	}
	inner.ServeHTTP(w, req)
}

// repoBlobs keeps blobs by repository and digest.
type repoBlobs struct {
	mu sync.Mutex
	m  map[string][]byte // repo + "@" + digest
}

// blobKey names a blob of repo. The registry names the repository of an
// upload's last PUT with "/blobs" after it (it counts path elements).
func blobKey(repo string, digest string) string {
	return strings.TrimSuffix(repo, "/blobs") + "@" + digest
}

func (b *repoBlobs) Get(_ context.Context, repo string, h v1.Hash) (io.ReadCloser, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	data, ok := b.m[blobKey(repo, h.String())]
	if !ok {
		return nil, registry.ErrNotFound
	}
	return io.NopCloser(bytes.NewReader(data)), nil
}

func (b *repoBlobs) Stat(_ context.Context, repo string, h v1.Hash) (int64, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	data, ok := b.m[blobKey(repo, h.String())]
	if !ok {
		return 0, registry.ErrNotFound
	}
	return int64(len(data)), nil
}

func (b *repoBlobs) Put(_ context.Context, repo string, h v1.Hash, rc io.ReadCloser) error {
	defer rc.Close()
	data, err := io.ReadAll(rc)
	if err != nil {
		return err
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	b.m[blobKey(repo, h.String())] = data
	return nil
}

func (b *repoBlobs) mount(from, to, digest string) bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	data, ok := b.m[blobKey(from, digest)]
	if ok {
		b.m[blobKey(to, digest)] = data
	}
	return ok
}

// counts are the uploads and mounts so far.
func (r *testRegistry) counts() (uploads, mounts int) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.uploads, r.mounts
}

func (r *testRegistry) gets() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.blobGets
}

// push writes img to the registry as repo:tag, the test's credentials
// given directly, as another client would push it.
func (r *testRegistry) push(t *testing.T, repoTag string, img v1.Image) string {
	t.Helper()
	ref, err := name.ParseReference(r.host + "/" + repoTag)
	if err != nil {
		t.Fatal(err)
	}
	if err := remote.Write(ref, img, remote.WithAuth(&authn.Basic{Username: registryUser, Password: registryPass})); err != nil {
		t.Fatalf("push %s: %v", ref, err)
	}
	return ref.String()
}

// dockerConfig writes a DOCKER_CONFIG directory whose config.json holds
// the registry's credentials, readable by the test's users.
func (r *testRegistry) dockerConfig(t *testing.T, dir string) string {
	t.Helper()
	cfg := filepath.Join(dir, "docker")
	if err := os.MkdirAll(cfg, 0o755); err != nil {
		t.Fatal(err)
	}
	auth := base64.StdEncoding.EncodeToString([]byte(registryUser + ":" + registryPass))
	body := fmt.Sprintf(`{"auths": {%q: {"auth": %q}}}`, r.host, auth)
	if err := os.WriteFile(filepath.Join(cfg, "config.json"), []byte(body), 0o644); err != nil {
		t.Fatal(err)
	}
	return cfg
}

// tarEntry is one entry of a layer a test makes.
type tarEntry struct {
	name, body, link string
	typ              byte
	mode             int64 // 0644 (0755 for a directory) when 0
	xattrs           map[string]string
}

// layerOf is a layer holding entries, compressed as comp.
func layerOf(t *testing.T, comp compression.Compression, entries ...tarEntry) v1.Layer {
	t.Helper()
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, e := range entries {
		hdr := &tar.Header{Name: e.name, Typeflag: e.typ, Linkname: e.link, Mode: 0o644, Size: int64(len(e.body))}
		if e.typ == tar.TypeDir {
			hdr.Mode, hdr.Size = 0o755, 0
		}
		if e.mode != 0 {
			hdr.Mode = e.mode
		}
		if e.typ == tar.TypeSymlink || e.typ == tar.TypeLink {
			hdr.Size = 0
		}
		for k, v := range e.xattrs {
			if hdr.PAXRecords == nil {
				hdr.PAXRecords = map[string]string{}
			}
			hdr.PAXRecords["SCHILY.xattr."+k] = v
		}
		if err := tw.WriteHeader(hdr); err != nil {
			t.Fatal(err)
		}
		if hdr.Size > 0 {
			io.WriteString(tw, e.body)
		}
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	data := buf.Bytes()
	l, err := tarball.LayerFromOpener(func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(data)), nil }, tarball.WithCompression(comp))
	if err != nil {
		t.Fatal(err)
	}
	return l
}

// busyboxLayer is a layer of the busybox root the tests run in.
func busyboxLayer(t *testing.T, comp compression.Compression) v1.Layer {
	t.Helper()
	dir := testbase.Busybox(t, filepath.Join(t.TempDir(), "bb"))
	var entries []tarEntry
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil || p == dir {
			return err
		}
		rel, _ := filepath.Rel(dir, p)
		switch {
		case d.Type()&fs.ModeSymlink != 0:
			target, _ := os.Readlink(p)
			entries = append(entries, tarEntry{name: rel, typ: tar.TypeSymlink, link: target})
		case d.IsDir():
			entries = append(entries, tarEntry{name: rel + "/", typ: tar.TypeDir})
		default:
			body, err := os.ReadFile(p)
			if err != nil {
				return err
			}
			entries = append(entries, tarEntry{name: rel, typ: tar.TypeReg, body: string(body), mode: 0o755})
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return layerOf(t, comp, entries...)
}

// pullTestImage is three layers over busybox: one with files, one that
// deletes and replaces some of them (a whiteout, an opaque directory) and
// holds a hard link and an xattr, and a top one with motd.
func pullTestImage(t *testing.T, comp compression.Compression, motd string) v1.Image {
	t.Helper()
	base := layerOf(t, comp,
		tarEntry{name: "data/", typ: tar.TypeDir}, tarEntry{name: "data/keep", body: "kept\n"}, tarEntry{name: "data/gone", body: "gone\n"},
		tarEntry{name: "opq/", typ: tar.TypeDir}, tarEntry{name: "opq/old", body: "old\n"})
	changes := layerOf(t, comp,
		tarEntry{name: "data/", typ: tar.TypeDir}, tarEntry{name: "data/.wh.gone"},
		tarEntry{name: "opq/", typ: tar.TypeDir}, tarEntry{name: "opq/.wh..wh..opq"}, tarEntry{name: "opq/new", body: "new\n"},
		tarEntry{name: "l2/", typ: tar.TypeDir}, tarEntry{name: "l2/a", body: "linked\n"}, tarEntry{name: "l2/b", typ: tar.TypeLink, link: "l2/a"},
		tarEntry{name: "data/x", body: "x\n", xattrs: map[string]string{"user.test": "yes"}})
	top := layerOf(t, comp, tarEntry{name: "etc/", typ: tar.TypeDir}, tarEntry{name: "etc/motd", body: motd})
	img, err := mutate.AppendLayers(empty.Image, busyboxLayer(t, comp), base, changes, top)
	if err != nil {
		t.Fatal(err)
	}
	return img
}

// withEnv runs incarnate under h with env added.
func withEnv(h *harness, env []string, args ...string) (string, string, int) {
	h.t.Helper()
	cmd := h.command(args...)
	cmd.Env = append(cmd.Env, env...)
	var out, errOut bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errOut
	err := cmd.Run()
	if _, ok := err.(*exec.ExitError); err != nil && !ok {
		h.t.Fatalf("incarnate %v: %v", args, err)
	}
	return out.String(), errOut.String(), cmd.ProcessState.ExitCode()
}

// base pull through a registry that wants credentials, for every user:
// credentials from $DOCKER_CONFIG, whiteouts, an opaque directory, a
// hard link and an xattr kept apart layer by layer, shared layers
// fetched once, a tampered blob and a connection cut mid-layer refused
// with nothing left behind, and the rerun after the cut succeeding.
func TestBasePull(t *testing.T) {
	forEachUser(t, func(t *testing.T, h *harness) {
		reg := newTestRegistry(t)
		env := []string{"DOCKER_CONFIG=" + reg.dockerConfig(t, h.dir)}
		ref := reg.push(t, "test/img:1", pullTestImage(t, compression.GZip, "v1\n"))
		if _, errOut, status := h.run("base", "pull", ref, "anon"); status == 0 || !strings.Contains(errOut, "docker login "+reg.host) {
			t.Errorf("pull without credentials: status %d, stderr %q; want the registry's refusal", status, errOut)
		}

		before := reg.gets()
		out, errOut, status := withEnv(h, env, "base", "pull", ref)
		if status != 0 || !strings.Contains(out, "pulled base img-1 from "+ref+" (4 layers") {
			t.Fatalf("base pull: status %d\nstdout %s\nstderr %s", status, out, errOut)
		}
		if got := reg.gets() - before; got != 5 {
			t.Errorf("the first pull fetched %d blobs, want 5 (4 layers and the config)", got)
		}
		h.ok("new", "--base", "img-1", "s")
		got := h.ok("run", "s", "--", "sh", "-c", "cat /data/keep /opq/new /etc/motd; ls /data /opq; stat -c %h /l2/a")
		if want := "kept\nnew\nv1\n/data:\nkeep\nx\n\n/opq:\nnew\n2\n"; got != want {
			t.Errorf("a session on the pulled base sees\n%q\nwant (whiteout, opaque dir, hard link)\n%q", got, want)
		}
		if x := pulledXattr(t, h, "data/x", "user.test"); x != "yes" {
			t.Errorf("data/x's user.test in its layer: %q, want yes", x)
		}

		// A related image: only its own top layer is fetched.
		ref2 := reg.push(t, "test/img:2", pullTestImage(t, compression.GZip, "v2\n"))
		before = reg.gets()
		if _, errOut, status := withEnv(h, env, "base", "pull", ref2, "img2"); status != 0 {
			t.Fatalf("second pull: status %d, %s", status, errOut)
		}
		if got := reg.gets() - before; got != 2 {
			t.Errorf("the second pull fetched %d blobs, want 2 (its top layer and the config)", got)
		}
		if n := len(testbase.DirNames(t, filepath.Join(h.store, "layers"))); n != 5+1 {
			t.Errorf("the store holds %d layers, want 6: bb's, 4 shared and one of img2's own", n)
		}

		// zstd layers of the same content are the same layers; a damaged
		// or cut blob of the new one fails the pull and leaves nothing.
		for _, damage := range []string{"tamper", "cut"} {
			img := pullTestImage(t, compression.ZStd, damage+"\n")
			top, _ := img.Layers()
			d, _ := top[len(top)-1].Digest()
			refD := reg.push(t, "test/img:"+damage, img)
			reg.mu.Lock()
			map[string]map[string]bool{"tamper": reg.tamper, "cut": reg.cut}[damage][d.String()] = true
			reg.mu.Unlock()
			layersBefore := testbase.DirNames(t, filepath.Join(h.store, "layers"))
			_, errOut, status := withEnv(h, env, "base", "pull", refD, damage)
			if status == 0 {
				t.Errorf("pull of a %s blob went through", damage)
			}
			if damage == "tamper" && !strings.Contains(errOut, "sha256") {
				t.Errorf("pull of a tampered blob says %q, want the digest named", errOut)
			}
			if left := testbase.DirNames(t, filepath.Join(h.store, "tmp")); len(left) != 0 {
				t.Errorf("a failed pull (%s) left %v in tmp/", damage, left)
			}
			if got := testbase.DirNames(t, filepath.Join(h.store, "layers")); len(got) != len(layersBefore) {
				t.Errorf("a failed pull (%s) changed layers/: %v, was %v", damage, got, layersBefore)
			}
			if _, _, status := h.run("new", "--base", damage, "on-"+damage); status == 0 {
				t.Errorf("a failed pull (%s) left a base", damage)
			}
			reg.mu.Lock()
			delete(reg.tamper, d.String())
			delete(reg.cut, d.String())
			reg.mu.Unlock()
			if _, errOut, status := withEnv(h, env, "base", "pull", refD, damage); status != 0 {
				t.Errorf("pull again after the %s: status %d, %s", damage, status, errOut)
			}
		}
	})
}

// pulledXattr is xattr name of path rel in the store's pulled layer that
// holds it.
func pulledXattr(t *testing.T, h *harness, rel, name string) string {
	t.Helper()
	for _, id := range testbase.DirNames(t, filepath.Join(h.store, "layers")) {
		buf := make([]byte, 256)
		if n, err := unix.Lgetxattr(filepath.Join(h.store, "layers", id, rel), name, buf); err == nil {
			return string(buf[:n])
		}
	}
	return ""
}

func TestBaseNameFor(t *testing.T) {
	for in, want := range map[string]string{
		"debian:12": "debian-12", "alpine": "alpine", "ghcr.io/org/tool:v1.2_3": "tool-v1.2_3",
		"ghcr.io/org/img@sha256:" + strings.Repeat("ab", 32): "img-abababababab",
	} {
		ref, err := name.ParseReference(in)
		if err != nil {
			t.Fatal(err)
		}
		if got := layers.PullName(ref); got != want {
			t.Errorf("PullName(%s) = %q, want %q", in, got, want)
		}
	}
}
