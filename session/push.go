package session

import (
	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/remote"

	"github.com/incarnate-dev/incarnate/layers"
)

// PushOptions shape a push.
type PushOptions struct {
	ImageOptions
	// Remote are the transfer's options (internal/registry.Remote).
	Remote []remote.Option
}

// Push sends base to the registry as ref. A layer pulled from the
// same registry is not packed nor sent again: the registry has it in
// this repository already, or mounts it from the one it came from
// (where the registry allows that; else remote.Write copies it across).
// A layer from another registry is packed here like any other, so a
// push needs no credentials, nor even a route, to a third registry.
// Blobs go one at a time, so that each draws its own progress line.
func (s *Store) Push(base string, ref name.Reference, o PushOptions) error {
	o.reuse = func(origin layers.LayerOrigin) (name.Digest, bool) { return onRegistry(origin, ref.Context()) }
	o.remote, o.uploads = o.Remote, o.Progress
	img, done, err := s.baseImage(base, o.ImageOptions)
	if err != nil {
		return err
	}
	defer done()
	return remote.Write(ref, img, append(o.Remote, remote.WithJobs(1))...)
}

// onRegistry is where the blob of origin lies, when that is on target's
// registry (with target's way of reaching it, plain HTTP or not).
func onRegistry(origin layers.LayerOrigin, target name.Repository) (name.Digest, bool) {
	repo, err := name.NewRepository(origin.Repo)
	if err != nil || repo.RegistryStr() != target.RegistryStr() {
		return name.Digest{}, false
	}
	repo.Registry = target.Registry
	return repo.Digest(origin.Digest), true
}
