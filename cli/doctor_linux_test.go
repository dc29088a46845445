package cli

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// On this machine everything a session needs works, for root and for an
// ordinary user: doctor says so, exits 0 and leaves nothing behind.
func TestDoctorPassesHere(t *testing.T) {
	forEachUser(t, func(t *testing.T, h *harness) {
		out, errOut, status := h.run("doctor")
		if status != 0 || errOut != "" {
			t.Fatalf("doctor as %s: exit %d, stderr %q\n%s", h.u.name, status, errOut, out)
		}
		want := []string{"ok    store: ", "ok    overlay in a user namespace: ", "all needed checks passed"}
		if h.u.uid == 0 {
			want = append(want, "ok    overlay as root: ")
		}
		for _, w := range want {
			if !containsLine(out, w) {
				t.Errorf("doctor as %s: no line starting %q in:\n%s", h.u.name, w, out)
			}
		}
		if left, _ := os.ReadDir(filepath.Join(h.store, "tmp")); len(left) != 0 {
			t.Errorf("doctor left %d probe dir(s) in the store's tmp", len(left))
		}
	})
}

func containsLine(out, prefix string) bool {
	for _, line := range strings.Split(out, "\n") {
		if strings.HasPrefix(line, prefix) {
			return true
		}
	}
	return false
}

func fixed(r result) func(*doctorEnv) result { return func(*doctorEnv) result { return r } }

func TestDoctorVerdicts(t *testing.T) {
	okR := result{verdict: pass, detail: "fine"}
	failR := result{verdict: fail, detail: "broken", fix: "mend it"}
	warnR := result{verdict: warn, detail: "odd", fix: "look"}
	tests := []struct {
		name   string
		checks []check
		want   string
		status int
	}{
		{"all ok", []check{{"a", always, fixed(okR)}, {"b", never, fixed(okR)}},
			"ok    a: fine\nok    b: fine\nall needed checks passed\n", 0},
		{"needed failure", []check{{"a", always, fixed(okR)}, {"b", always, fixed(failR)}},
			"ok    a: fine\nFAIL  b: broken\n      fix: mend it\n1 needed check(s) failed\n", 1},
		{"failure not needed is a warning", []check{{"a", never, fixed(failR)}},
			"warn  a: broken\n      fix: mend it\nall needed checks passed, 1 warning(s)\n", 0},
		{"warning", []check{{"a", always, fixed(warnR)}, {"b", always, fixed(okR)}},
			"warn  a: odd\n      fix: look\nok    b: fine\nall needed checks passed, 1 warning(s)\n", 0},
		{"skipped", []check{{"a", always, fixed(result{verdict: skip})}, {"b", always, fixed(okR)}},
			"ok    b: fine\nall needed checks passed\n", 0},
		{"needed only as root", []check{{"a", asRoot, fixed(failR)}, {"b", rootless, fixed(failR)}},
			"warn  a: broken\n      fix: mend it\nFAIL  b: broken\n      fix: mend it\n1 needed check(s) failed, 1 warning(s)\n", 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var out, stderr bytes.Buffer
			err := runChecks(&out, tt.checks, &doctorEnv{root: false})
			if got := out.String(); got != tt.want {
				t.Errorf("output:\ngot  %q\nwant %q", got, tt.want)
			}
			if got := report(&stderr, err); got != tt.status || stderr.Len() != 0 {
				t.Errorf("exit %d with stderr %q, want %d and nothing", got, stderr.String(), tt.status)
			}
		})
	}
}

func TestDoctorKernel(t *testing.T) {
	tests := []struct {
		release string
		want    verdict
	}{
		{"6.18.44-fc-v782", pass},
		{"5.11.0", pass},
		{"5.15.0-91-generic", pass},
		{"5.10.0-28-amd64", fail},
		{"4.19.0", fail},
		{"5.1rc1", warn},
		{"garbage", warn},
	}
	for _, tt := range tests {
		r := kernelResult(tt.release)
		if r.verdict != tt.want || (r.verdict == fail && r.fix == "") {
			t.Errorf("kernel %q: got %v %q (fix %q), want verdict %v with a fix when failing", tt.release, r.verdict, r.detail, r.fix, tt.want)
		}
	}
}

// The user namespace settings are read from files the test provides; a
// setting that keeps the user out must fail with the sysctl that lets
// them in.
func TestDoctorUserNSSettings(t *testing.T) {
	tests := []struct {
		name     string
		root     bool
		files    map[*string]string // missing files are absent
		want     verdict
		fixNames string
	}{
		{"max_user_namespaces 0", false, map[*string]string{&procMaxUserNS: "0\n"}, fail, "user.max_user_namespaces"},
		{"max_user_namespaces 0 as root", true, map[*string]string{&procMaxUserNS: "0\n"}, fail, "user.max_user_namespaces"},
		{"no user namespaces at all", false, map[*string]string{}, fail, "CONFIG_USER_NS"},
		{"unprivileged clone off", false, map[*string]string{&procMaxUserNS: "100\n", &procUnprivUserNS: "0\n"}, fail, "kernel.unprivileged_userns_clone=1"},
		{"AppArmor restriction", false, map[*string]string{&procMaxUserNS: "100\n", &procAppArmorUserNS: "1\n"}, fail, "kernel.apparmor_restrict_unprivileged_userns=0"},
		// Neither restricts root, so the real probe runs, and works here.
		{"root is not restricted", true, map[*string]string{&procMaxUserNS: "100\n", &procUnprivUserNS: "0\n", &procAppArmorUserNS: "1\n"}, pass, ""},
		{"all allowed", os.Geteuid() == 0, map[*string]string{&procMaxUserNS: "100\n", &procUnprivUserNS: "1\n", &procAppArmorUserNS: "0\n"}, pass, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			for i, v := range []*string{&procMaxUserNS, &procUnprivUserNS, &procAppArmorUserNS} {
				saved := *v
				t.Cleanup(func() { *v = saved })
				*v = filepath.Join(dir, string(rune('a'+i)))
				if body, ok := tt.files[v]; ok {
					if err := os.WriteFile(*v, []byte(body), 0o644); err != nil {
						t.Fatal(err)
					}
				}
			}
			r := checkUserNS(&doctorEnv{root: tt.root})
			if r.verdict != tt.want || !strings.Contains(r.fix, tt.fixNames) {
				t.Errorf("got %v %q, fix %q; want %v with a fix naming %q", r.verdict, r.detail, r.fix, tt.want, tt.fixNames)
			}
			var out bytes.Buffer
			printResult(&out, "user namespaces", r)
			if tt.want == fail && !strings.HasPrefix(out.String(), "FAIL  user namespaces: ") {
				t.Errorf("printed %q, want a FAIL line", out.String())
			}
		})
	}
}

// The store probe finds d_type and the xattrs of this user's mount mode
// on the test's own filesystem, and cleans up after itself.
func TestDoctorStoreProbe(t *testing.T) {
	dir := t.TempDir()
	if err := probeStoreFiles(dir, xattrName(os.Geteuid() == 0)); err != nil {
		t.Fatalf("probeStoreFiles: %v", err)
	}
	if left, _ := os.ReadDir(dir); len(left) != 0 {
		t.Errorf("probe left %d entries behind", len(left))
	}
	if err := checkDType(dir, "absent"); err == nil {
		t.Errorf("checkDType found an entry that does not exist")
	}
	var pe *os.PathError
	if err := checkDType(filepath.Join(dir, "nope"), "x"); !errors.As(err, &pe) {
		t.Errorf("checkDType on a missing dir: %v, want a path error", err)
	}
}

// For an ordinary user the host base is the default, so doctor checks
// what it needs, fails when it is missing (exit 1) and says how to fix
// it: an old fuse-overlayfs, and a /dev/fuse closed to users.
func TestDoctorChecksTheHostBase(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root, to close /dev/fuse for the test")
	}
	openFuse(t)
	forEachUser(t, func(t *testing.T, h *harness) {
		if h.u.uid == 0 {
			t.Skip("root's host base needs no FUSE")
		}
		out, _, status := h.run("doctor")
		if status != 0 || !containsLine(out, "ok    host base: the host base works through fuse-overlayfs 1.") || !strings.Contains(out, "twice as slow") {
			t.Errorf("doctor: exit %d\n%s", status, out)
		}
		if h.u.subIDs && !containsLine(out, "ok    sub-ids: ") {
			t.Errorf("doctor with a sub-id range does not say it is used:\n%s", out)
		}
		if !h.u.subIDs && !containsLine(out, "warn  sub-ids: ") {
			t.Errorf("doctor without a sub-id range does not warn:\n%s", out)
		}

		old := filepath.Join(h.dir, "old-fuse")
		if err := os.Mkdir(old, 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(old, "fuse-overlayfs"), []byte("#!/bin/sh\necho 'fuse-overlayfs: version 1.9'\n"), 0o755); err != nil {
			t.Fatal(err)
		}
		h.path = old
		out, _, status = h.run("doctor")
		if status != 1 || !containsLine(out, "FAIL  host base: the host base cannot be used: fuse-overlayfs 1.9 is too old") {
			t.Errorf("doctor with fuse-overlayfs 1.9: exit %d\n%s", status, out)
		}
		h.path = ""

		if err := os.Chmod("/dev/fuse", 0o600); err != nil {
			t.Fatal(err)
		}
		out, _, status = h.run("doctor")
		if err := os.Chmod("/dev/fuse", 0o666); err != nil {
			t.Fatal(err)
		}
		if status != 1 || !strings.Contains(out, "/dev/fuse, which you cannot open") || !strings.Contains(out, "sudo chmod 0666 /dev/fuse") {
			t.Errorf("doctor with /dev/fuse closed: exit %d\n%s", status, out)
		}
	})
}
