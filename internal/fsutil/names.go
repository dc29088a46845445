package fsutil

import (
	"os"
	"sort"
	"strings"
)

// Names lists dir's entries that end in suffix, with it cut off, sorted;
// hidden entries (a leading dot: temporary files) are left out, and an
// unreadable dir has none. It reads the directory alone, for callers
// that must answer at once (shell completion).
func Names(dir, suffix string) []string {
	f, err := os.Open(dir)
	if err != nil {
		return nil
	}
	defer f.Close()
	names, _ := f.Readdirnames(-1)
	var out []string
	for _, n := range names {
		if base, ok := strings.CutSuffix(n, suffix); ok && base != "" && !strings.HasPrefix(n, ".") {
			out = append(out, base)
		}
	}
	sort.Strings(out)
	return out
}
