// Package registry says how incarnate reaches OCI registries: how a
// reference is read (as docker reads it), where credentials come from,
// and the settings for plain-HTTP registries and a Docker Hub mirror.
// The transfers themselves are go-containerregistry's remote package.
package registry

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net/http"
	"os"
	"runtime"
	"strings"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/remote/transport"
)

// MirrorEnv names a registry that stands in for Docker Hub, as a
// registry mirror does for docker ("mirror.example:5000"): references
// without a registry of their own, and docker.io ones, are read there.
const MirrorEnv = "INCARNATE_REGISTRY_MIRROR"

// Options say how to reach a registry.
type Options struct {
	// Insecure allows plain HTTP, and a certificate no one vouches for.
	// Loopback and private addresses are spoken to over HTTP anyway.
	Insecure bool
	// Mirror stands in for Docker Hub ("" for MirrorEnv's value).
	Mirror string
	// Platform is the image to take from a multi-platform index,
	// "os/arch[/variant]"; "" for linux and this machine's arch.
	Platform string
	Context  context.Context
}

// ParseRef reads ref as docker does: "debian:12" is
// index.docker.io/library/debian:12, "ghcr.io/org/img@sha256:…" a
// digest. A Docker Hub reference goes to the mirror when there is one.
func ParseRef(ref string, o Options) (name.Reference, error) {
	var opts []name.Option
	if o.Insecure {
		opts = append(opts, name.Insecure)
	}
	r, err := name.ParseReference(ref, opts...)
	if err != nil {
		return nil, fmt.Errorf("%q is not an image reference (like debian:12 or ghcr.io/org/image@sha256:…): %w", ref, err)
	}
	mirror := o.Mirror
	if mirror == "" {
		mirror = os.Getenv(MirrorEnv)
	}
	if mirror == "" || r.Context().RegistryStr() != name.DefaultRegistry {
		return r, nil
	}
	moved := mirror + "/" + r.Context().RepositoryStr()
	if d, ok := r.(name.Digest); ok {
		moved += "@" + d.DigestStr()
	} else {
		moved += ":" + r.Identifier()
	}
	m, err := name.ParseReference(moved, opts...)
	if err != nil {
		return nil, fmt.Errorf("registry mirror %q (%s): %w", mirror, MirrorEnv, err)
	}
	return m, nil
}

// ParsePlatform reads "os/arch[/variant]"; "" is linux on this machine's
// architecture.
func ParsePlatform(s string) (v1.Platform, error) {
	if s == "" {
		return v1.Platform{OS: "linux", Architecture: runtime.GOARCH}, nil
	}
	parts := strings.Split(s, "/")
	if len(parts) < 2 || len(parts) > 3 || parts[0] == "" || parts[1] == "" {
		return v1.Platform{}, fmt.Errorf("platform %q: use OS/ARCH or OS/ARCH/VARIANT, like linux/arm64", s)
	}
	p := v1.Platform{OS: parts[0], Architecture: parts[1]}
	if len(parts) == 3 {
		p.Variant = parts[2]
	}
	return p, nil
}

// Remote are the options of every transfer: credentials from the usual
// places (docker's config.json or $DOCKER_CONFIG, containers'
// auth.json or $REGISTRY_AUTH_FILE, credential helpers included;
// anonymous otherwise), the platform, and for Insecure a transport that
// takes any certificate.
func Remote(o Options) ([]remote.Option, error) {
	p, err := ParsePlatform(o.Platform)
	if err != nil {
		return nil, err
	}
	opts := []remote.Option{
		remote.WithAuthFromKeychain(authn.DefaultKeychain),
		remote.WithPlatform(p),
		remote.WithUserAgent("incarnate"),
	}
	if o.Context != nil {
		opts = append(opts, remote.WithContext(o.Context))
	}
	if o.Insecure {
		t := remote.DefaultTransport.(*http.Transport).Clone()
		t.TLSClientConfig = &tls.Config{InsecureSkipVerify: true}
		opts = append(opts, remote.WithTransport(t))
	}
	return opts, nil
}

// Explain adds to a transfer's error what to do about it, where the
// registry's answer says: credentials, a name that is not there, plain
// HTTP.
func Explain(err error, ref name.Reference) error {
	host := ref.Context().RegistryStr()
	var terr *transport.Error
	switch {
	case errors.As(err, &terr) && (terr.StatusCode == http.StatusUnauthorized || terr.StatusCode == http.StatusForbidden):
		return fmt.Errorf("%w\nthe registry wants credentials incarnate does not have: log in with `docker login %s` or `podman login %s` (their files are read, and $DOCKER_CONFIG and $REGISTRY_AUTH_FILE)", err, host, host)
	case errors.As(err, &terr) && terr.StatusCode == http.StatusNotFound:
		return fmt.Errorf("%w\n%s has no image %s: check the name and the tag", err, host, ref.Context().RepositoryStr()+":"+ref.Identifier())
	case strings.Contains(err.Error(), "server gave HTTP response to HTTPS client"):
		return fmt.Errorf("%w\n%s speaks plain HTTP: add --insecure if you trust the network to it", err, host)
	}
	return err
}
