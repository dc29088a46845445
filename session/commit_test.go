package session

import (
	"os"
	"path/filepath"
	"testing"
)

// dropMountPoint closed the layer's fd twice and left the fd of the
// directory it went down to open: a commit of a session with many
// mount points leaked one fd each (and the second close could hit an fd
// another goroutine had opened meanwhile).
func TestDropMountPointLeaksNoFd(t *testing.T) {
	layer := t.TempDir()
	if err := os.MkdirAll(filepath.Join(layer, "a", "b", "c"), 0o755); err != nil {
		t.Fatal(err)
	}
	open := func() int {
		ents, err := os.ReadDir("/proc/self/fd")
		if err != nil {
			t.Fatal(err)
		}
		return len(ents)
	}
	before := open()
	for range 10 {
		dropMountPoint(layer, "/a/b/c")
	}
	if after := open(); after != before {
		t.Errorf("%d fds open after 10 calls, %d before", after, before)
	}
}
