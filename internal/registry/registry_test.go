package registry

import (
	"testing"
)

func TestParseRef(t *testing.T) {
	for _, tc := range []struct{ in, mirror, want string }{
		{"debian:12", "", "index.docker.io/library/debian:12"},
		{"alpine", "", "index.docker.io/library/alpine:latest"},
		{"ghcr.io/org/img@sha256:" + sixtyFour, "", "ghcr.io/org/img@sha256:" + sixtyFour},
		{"debian:12", "mirror.local:5000", "mirror.local:5000/library/debian:12"},
		{"docker.io/org/x@sha256:" + sixtyFour, "m:1", "m:1/org/x@sha256:" + sixtyFour},
		{"ghcr.io/org/img:1", "m:1", "ghcr.io/org/img:1"}, // only Docker Hub is mirrored
	} {
		r, err := ParseRef(tc.in, Options{Mirror: tc.mirror})
		if err != nil || r.Name() != tc.want {
			t.Errorf("ParseRef(%q, mirror %q) = %v, %v; want %s", tc.in, tc.mirror, r, err, tc.want)
		}
	}
	if _, err := ParseRef("UPPER/Case:x", Options{}); err == nil {
		t.Error("ParseRef took a repository in capitals")
	}
}

const sixtyFour = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"

func TestParsePlatform(t *testing.T) {
	if p, err := ParsePlatform("linux/arm64/v8"); err != nil || p.OS != "linux" || p.Architecture != "arm64" || p.Variant != "v8" {
		t.Errorf("linux/arm64/v8: %+v, %v", p, err)
	}
	for _, bad := range []string{"linux", "/amd64", "a/b/c/d"} {
		if _, err := ParsePlatform(bad); err == nil {
			t.Errorf("ParsePlatform(%q) took it", bad)
		}
	}
}
