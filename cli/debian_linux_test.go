package cli

import (
	"bufio"
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/incarnate-dev/incarnate/internal/testbase"
	"github.com/incarnate-dev/incarnate/layers"
)

// debianSuite is the release the Debian base is built from.
const debianSuite = "bookworm"

// mmdebstrap's own default mirror, used when the host names no other.
const debianDefaultMirror = "http://deb.debian.org/debian"

// A real workload: a Debian minbase built by mmdebstrap as a tarball,
// imported as a base, and apt-get installing a package in one session
// while another session and the base itself stay as they were; as root,
// and as an ordinary user with sub-id ranges (apt drops to _apt, uid 42,
// which the user's own id alone cannot be).
func TestDebianBase(t *testing.T) {
	if testing.Short() {
		t.Skip("-short: builds a Debian base with mmdebstrap from the network (about a minute)")
	}
	if os.Geteuid() != 0 {
		t.Skip("needs root: for the root run, and to give uid 65534 sub-id ranges")
	}
	tarball := filepath.Join(testbase.SharedDir(t), "base.tar")
	t0 := time.Now()
	buildDebian(t, tarball)
	t.Logf("mmdebstrap: %v", time.Since(t0).Round(time.Millisecond))
	t.Run("root", func(t *testing.T) { testDebianBase(t, newHarness(t, rootUser), tarball) })
	t.Run("sub-ids", func(t *testing.T) { testDebianBase(t, newHarness(t, subIDUser), tarball) })
}

func testDebianBase(t *testing.T, h *harness, tarball string) {
	t0 := time.Now()
	h.ok("base", "import", "deb", tarball)
	t.Logf("base import: %v", time.Since(t0).Round(time.Millisecond))
	h.ok("new", "one", "--base", "deb")
	h.ok("new", "two", "--base", "deb")

	layer := debianLayer(t, h, "deb")
	t0 = time.Now()
	before := treeDigest(t, layer)
	t.Logf("digest of the base layer: %v", time.Since(t0).Round(time.Millisecond))

	t0 = time.Now()
	h.ok("run", "one", "--", "sh", "-c", "apt-get update && apt-get install -y hello")
	t.Logf("apt-get update and install in the session: %v", time.Since(t0).Round(time.Millisecond))
	if out := h.ok("run", "one", "--", "hello"); out != "Hello, world!\n" {
		t.Errorf("hello in session one printed %q", out)
	}

	if after := treeDigest(t, layer); after != before {
		t.Errorf("apt-get in a session changed the base layer:\nbefore %s\nafter  %s", before, after)
	}
	if out, errOut, status := h.run("run", "two", "--", "sh", "-c", "command -v hello"); status == 0 {
		t.Errorf("session two has hello (%q, %q): one's install leaked into it", out, errOut)
	}
}

// buildDebian runs mmdebstrap into the tarball out, readable by all,
// skipping the test when the mirror cannot be reached and failing it on
// any other error.
func buildDebian(t *testing.T, out string) {
	t.Helper()
	if _, err := exec.LookPath("mmdebstrap"); err != nil {
		t.Fatalf("mmdebstrap not found: the Debian base test needs it (apt-get install mmdebstrap, as .ci/run does; or go test -short to skip)")
	}
	mirror := hostDebianMirror()
	checkMirror(t, mirror)

	// unshare mode, even as root: mmdebstrap's /proc and /dev mounts stay
	// in its own mount namespace instead of the host's. TMPDIR keeps its
	// scratch files in the test's own directory.
	args := []string{"--mode=unshare", "--variant=minbase", debianSuite, out}
	if mirror != debianDefaultMirror {
		// The host reaches Debian through another mirror: use it, and
		// write it into the base, so apt inside the session uses it too.
		args = append(args, mirror)
	}
	tmp := filepath.Join(filepath.Dir(out), "tmp")
	if err := os.Mkdir(tmp, 0o755); err != nil {
		t.Fatal(err)
	}
	var log bytes.Buffer
	cmd := exec.Command("mmdebstrap", args...)
	cmd.Env = append(os.Environ(), "TMPDIR="+tmp)
	cmd.Stdout, cmd.Stderr = &log, &log
	if err := cmd.Run(); err != nil {
		if unreachable(log.String()) {
			t.Skipf("the Debian mirror %s cannot be reached: mmdebstrap %s: %v\n%s", mirror, strings.Join(args, " "), err, log.String())
		}
		t.Fatalf("mmdebstrap %s: %v\n%s", strings.Join(args, " "), err, log.String())
	}
	if err := os.Chmod(out, 0o644); err != nil {
		t.Fatal(err)
	}
}

// checkMirror fetches the suite's InRelease through apt's own downloader
// (so apt's proxy settings apply), to skip quickly when the network is
// missing. Other errors are left for mmdebstrap to report.
func checkMirror(t *testing.T, mirror string) {
	t.Helper()
	dst := filepath.Join(t.TempDir(), "InRelease")
	// No _apt sandbox: the private temp dir is not its to write.
	out, err := exec.Command("/usr/lib/apt/apt-helper", "-o", "APT::Sandbox::User=root",
		"-o", "Acquire::http::Timeout=20", "-o", "Acquire::https::Timeout=20", "-o", "Acquire::Retries=0",
		"download-file", mirror+"/dists/"+debianSuite+"/InRelease", dst).CombinedOutput()
	if err != nil && unreachable(string(out)) {
		t.Skipf("the Debian mirror %s cannot be reached: %v\n%s", mirror, err, out)
	}
}

// unreachable reports whether apt's output says the network or the
// mirror's host could not be reached, as opposed to any other failure.
func unreachable(out string) bool {
	for _, s := range []string{
		"Could not resolve", "Temporary failure resolving", "Could not connect to",
		"Connection timed out", "Connection failed", "Connection refused",
		"Network is unreachable", "No route to host", "Unable to connect",
	} {
		if strings.Contains(out, s) {
			return true
		}
	}
	return false
}

// hostDebianMirror is the Debian archive this machine's apt uses, from
// /etc/apt/sources.list and /etc/apt/sources.list.d/*.{list,sources}: the
// first deb entry for debianSuite, else the first whose URI ends in
// /debian. Without one it is mmdebstrap's default.
func hostDebianMirror() string {
	type entry struct {
		uri    string
		suites []string
	}
	var entries []entry
	files, _ := filepath.Glob("/etc/apt/sources.list.d/*.list")
	files = append([]string{"/etc/apt/sources.list"}, files...)
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			continue
		}
		sc := bufio.NewScanner(bytes.NewReader(b))
		for sc.Scan() {
			line, _, _ := strings.Cut(sc.Text(), "#")
			fields := strings.Fields(line)
			if len(fields) < 3 || fields[0] != "deb" {
				continue
			}
			fields = fields[1:]
			if strings.HasPrefix(fields[0], "[") {
				// Options: "[a=b c=d]", possibly across fields.
				for len(fields) > 0 && !strings.HasSuffix(fields[0], "]") {
					fields = fields[1:]
				}
				if len(fields) > 0 {
					fields = fields[1:]
				}
			}
			if len(fields) >= 2 {
				entries = append(entries, entry{fields[0], fields[1:2]})
			}
		}
	}
	stanzas, _ := filepath.Glob("/etc/apt/sources.list.d/*.sources")
	for _, f := range stanzas {
		b, err := os.ReadFile(f)
		if err != nil {
			continue
		}
		for _, stanza := range strings.Split(string(b), "\n\n") {
			fields := map[string]string{}
			for _, line := range strings.Split(stanza, "\n") {
				if strings.HasPrefix(line, "#") {
					continue
				}
				if k, v, ok := strings.Cut(line, ":"); ok && !strings.HasPrefix(k, " ") {
					fields[strings.ToLower(k)] = strings.TrimSpace(v)
				}
			}
			if !strings.Contains(" "+fields["types"]+" ", " deb ") || strings.EqualFold(fields["enabled"], "no") {
				continue
			}
			for _, uri := range strings.Fields(fields["uris"]) {
				entries = append(entries, entry{uri, strings.Fields(fields["suites"])})
			}
		}
	}
	for _, e := range entries {
		for _, s := range e.suites {
			if s == debianSuite {
				return strings.TrimSuffix(e.uri, "/")
			}
		}
	}
	for _, e := range entries {
		if uri := strings.TrimSuffix(e.uri, "/"); strings.HasSuffix(uri, "/debian") {
			return uri
		}
	}
	return debianDefaultMirror
}

// debianLayer is the directory of base name's only layer. (onlyLayer
// does not fit: the harness has already imported the busybox base.)
func debianLayer(t *testing.T, h *harness, name string) string {
	t.Helper()
	st := &layers.Store{Root: h.store}
	b, err := st.Get(name)
	if err != nil {
		t.Fatal(err)
	}
	if len(b.Layers) != 1 {
		t.Fatalf("base %s has layers %v, want exactly one", name, b.Layers)
	}
	return st.LayerDir(b.Layers[0])
}
