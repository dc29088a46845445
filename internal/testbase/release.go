package testbase

import (
	"fmt"
	"os/exec"
)

// MakeRelease builds the release binary at bin as a user would, with
// `make build` (the pre-runtime stage and the C spawner in it), from a
// test of a package one directory below the repository's root.
func MakeRelease(bin string) error {
	out, err := exec.Command("make", "-C", "..", "--no-print-directory", "build", "BIN="+bin).CombinedOutput()
	if err != nil {
		return fmt.Errorf("make build: %v\n%s", err, out)
	}
	return nil
}
