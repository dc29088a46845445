package layers

import "errors"

// Sentinel errors of the store, shared by the session package.
var (
	ErrInvalidName = errors.New("invalid name")
	ErrExist       = errors.New("already exists")
	ErrNotExist    = errors.New("does not exist")
	ErrInUse       = errors.New("in use")
	// ErrBuiltin: the host base is not a file in the store and cannot be
	// replaced or removed.
	ErrBuiltin = errors.New("built in")
	// ErrUnsafeEntry: an archive member would land outside the directory
	// it is unpacked into (a ".." component, a path through a symlink, a
	// hard link to outside). The whole import is refused.
	ErrUnsafeEntry = errors.New("refused as unsafe")
	// ErrUnknownSource: an import source that is neither a directory, a
	// tar archive (plain or compressed) nor an OCI image.
	ErrUnknownSource = errors.New("not a directory, a rootfs tarball or an OCI image")
	// ErrHostNeedsRoot: inside a user namespace the kernel refuses the
	// host's "/" as an overlay lower dir (it has locked submounts).
	ErrHostNeedsRoot = errors.New("the host base needs root: inside a user namespace the kernel refuses / as an overlay lower dir; run incarnate as root, or import a base of your own (incarnate base import NAME DIR)")
)
