package layers

import "errors"

// Sentinel errors of the store, shared by the session package.
var (
	ErrInvalidName = errors.New("invalid name")
	ErrExist       = errors.New("already exists")
	ErrNotExist    = errors.New("does not exist")
	ErrInUse       = errors.New("in use")
)
