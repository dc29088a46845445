package layers

import "errors"

// Sentinel errors of the store, shared by the session package.
var (
	ErrInvalidName = errors.New("invalid name")
	ErrExist       = errors.New("already exists")
	ErrNotExist    = errors.New("does not exist")
	ErrInUse       = errors.New("in use")
	// ErrHostNeedsRoot: inside a user namespace the kernel refuses the
	// host's "/" as an overlay lower dir (it has locked submounts).
	ErrHostNeedsRoot = errors.New("the host base needs root: inside a user namespace the kernel refuses / as an overlay lower dir; run incarnate as root, or import a base of your own (incarnate base import NAME DIR)")
)
