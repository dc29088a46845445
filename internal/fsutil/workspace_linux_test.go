package fsutil_test

import (
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/incarnate-dev/incarnate/internal/fsutil"
	"github.com/incarnate-dev/incarnate/internal/testbase"
)

// The start-up clean-up deletes what crashed operations left, and never
// what a running one is making: a workspace (locked from the moment it
// shows under its name), a hidden one not yet locked, a file being
// written to be linked elsewhere. Those last two go once they are old.
func TestCleanStale(t *testing.T) {
	tmp := t.TempDir()
	live, err := fsutil.NewWorkspace(tmp, "session-")
	if err != nil {
		t.Fatal(err)
	}
	defer live.Discard()
	if filepath.Base(live.Dir)[0] == '.' {
		t.Fatalf("a workspace in use is still hidden: %s", live.Dir)
	}
	for _, p := range []string{"crashed-op", ".session-being-made"} {
		if err := os.Mkdir(filepath.Join(tmp, p), 0o700); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.WriteFile(filepath.Join(tmp, "new-base.json-1"), []byte("{}"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := fsutil.CleanStale(tmp); err != nil {
		t.Fatal(err)
	}
	if got := testbase.DirNames(t, tmp); len(got) != 3 || got[0] != ".session-being-made" || got[1] != "new-base.json-1" || got[2] != filepath.Base(live.Dir) {
		t.Fatalf("after a clean-up tmp/ holds %v; want the hidden dir, the file and the live workspace", got)
	}
	old := time.Now().Add(-2 * time.Minute)
	for _, p := range []string{".session-being-made", "new-base.json-1"} {
		if err := os.Chtimes(filepath.Join(tmp, p), old, old); err != nil {
			t.Fatal(err)
		}
	}
	if err := fsutil.CleanStale(tmp); err != nil {
		t.Fatal(err)
	}
	if got := testbase.DirNames(t, tmp); len(got) != 1 || got[0] != filepath.Base(live.Dir) {
		t.Errorf("after a clean-up of old leftovers tmp/ holds %v; want only the live workspace", got)
	}
}
