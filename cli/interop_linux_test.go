package cli

import (
	"encoding/json"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/google/go-containerregistry/pkg/compression"
)

// Clients incarnate did not write take what it makes, and it takes what
// they make: skopeo (Debian's package) and crane (go-containerregistry's
// command, which .ci/run installs).

// needTool skips the test when the client is not installed; CI has both.
func needTool(t *testing.T, tool string) string {
	t.Helper()
	p, err := exec.LookPath(tool)
	if err != nil {
		t.Skipf("%s is not installed (apt-get install skopeo; crane: see .ci/run): this test checks that it takes incarnate's images", tool)
	}
	return p
}

// tool runs a client as the harness's user (an image an ordinary user
// exports is one an ordinary user's tools read), with the registry's
// credentials in env.
func tool(t *testing.T, h *harness, env []string, argv ...string) string {
	t.Helper()
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.Env = append(os.Environ(), append([]string{"HOME=" + h.dir}, env...)...)
	cmd.Dir = h.dir
	if h.u.uid != os.Geteuid() {
		cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: uint32(h.u.uid), Gid: uint32(h.u.gid)}}
	}
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("%s: %v\n%s", strings.Join(argv, " "), err, out)
	}
	return string(out)
}

// An archive from base export is one skopeo inspects, as an OCI archive
// and as a docker one (manifest.json), and copies into an OCI layout and
// into a registry, from which incarnate pulls the same tree back and
// runs a session on it.
func TestBaseExportSkopeo(t *testing.T) {
	skopeo := needTool(t, "skopeo")
	forEachUser(t, func(t *testing.T, h *harness) {
		reg := newTestRegistry(t)
		env := []string{"DOCKER_CONFIG=" + reg.dockerConfig(t, h.dir)}
		committedBase(t, h)
		file := filepath.Join(userDir(t, h, "out"), "c1.tar")
		if out := h.ok("base", "export", "--compression", "zstd", "c1", file); !strings.Contains(out, "exported base c1 to "+file) {
			t.Errorf("base export says %q", out)
		}
		for _, transport := range []string{"oci-archive:", "docker-archive:"} {
			var got struct {
				Layers       []string
				Architecture string
			}
			out := tool(t, h, nil, skopeo, "inspect", transport+file)
			if err := json.Unmarshal([]byte(out), &got); err != nil || len(got.Layers) != 3 {
				t.Errorf("skopeo inspect %s: %v, %d layers; want 3\n%s", transport, err, len(got.Layers), out)
			}
		}
		tool(t, h, nil, skopeo, "copy", "oci-archive:"+file, "oci:"+filepath.Join(userDir(t, h, "layout"), "l")+":c1")
		ref := reg.host + "/test/skopeo:1"
		tool(t, h, nil, skopeo, "copy", "--dest-tls-verify=false", "--dest-creds", registryUser+":"+registryPass, "oci-archive:"+file, "docker://"+ref)
		if _, errOut, status := withEnv(h, env, "base", "pull", ref, "sk"); status != 0 {
			t.Fatalf("pull of what skopeo copied: status %d, %s", status, errOut)
		}
		sameTree(t, h, "c1", "sk")
		if got, want := sessionView(t, h, "sk"), wantSessionView(h); got != want {
			t.Errorf("a session on the base skopeo copied sees\n%q\nwant\n%q", got, want)
		}
	})
}

// An image crane made from a tarball (crane append), with a second
// layer appended over it, pulls and runs.
func TestCraneImagePulls(t *testing.T) {
	crane := needTool(t, "crane")
	forEachUser(t, func(t *testing.T, h *harness) {
		reg := newTestRegistry(t)
		env := []string{"DOCKER_CONFIG=" + reg.dockerConfig(t, h.dir)}
		dir := userDir(t, h, "crane")
		root := layerFile(t, filepath.Join(dir, "root.tar"), busyboxLayer(t, compression.None).Uncompressed)
		hello := layerFile(t, filepath.Join(dir, "hello.tar"), layerOf(t, compression.None, tarEntry{name: "hello", body: "from crane\n"}).Uncompressed)
		tool(t, h, env, crane, "append", "--insecure", "-f", root, "-t", reg.host+"/test/crane:1")
		tool(t, h, env, crane, "append", "--insecure", "-b", reg.host+"/test/crane:1", "-f", hello, "-t", reg.host+"/test/crane:2")
		if _, errOut, status := withEnv(h, env, "base", "pull", reg.host+"/test/crane:2", "cr"); status != 0 {
			t.Fatalf("pull of what crane pushed: status %d, %s", status, errOut)
		}
		h.ok("new", "--base", "cr", "c")
		if got := h.ok("run", "c", "--", "cat", "/hello"); got != "from crane\n" {
			t.Errorf("a session on crane's image reads %q, want %q", got, "from crane\n")
		}
	})
}

// layerFile writes what open gives to file.
func layerFile(t *testing.T, file string, open func() (io.ReadCloser, error)) string {
	t.Helper()
	rc, err := open()
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	f, err := os.Create(file)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if _, err := io.Copy(f, rc); err != nil {
		t.Fatal(err)
	}
	return file
}
