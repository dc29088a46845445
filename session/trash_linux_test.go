package session

import (
	"fmt"
	"os"
	"path/filepath"
	"testing"
)

// A purge that runs while something goes to the trash must not make the
// move fail: a directory toTrash made first to rename into was the
// purger's to delete in between, and `reset` failed on that
// (TestHalfResetIsFinished saw it when another command's purge ran).
func TestTrashWhilePurging(t *testing.T) {
	root := t.TempDir()
	if err := os.Mkdir(filepath.Join(root, "trash"), 0o700); err != nil {
		t.Fatal(err)
	}
	s := &Store{Root: root}
	stop, done := make(chan struct{}), make(chan struct{})
	go func() {
		defer close(done)
		for {
			select {
			case <-stop:
				return
			default:
				_ = s.Purge()
			}
		}
	}()
	defer func() { close(stop); <-done }()
	for i := range 200 {
		p := filepath.Join(root, fmt.Sprint("d", i))
		if err := os.MkdirAll(filepath.Join(p, "sub"), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := s.toTrash(p, "d"); err != nil {
			t.Fatalf("move %d to the trash while a purge runs: %v", i, err)
		}
	}
}
