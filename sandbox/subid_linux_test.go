package sandbox

import (
	"os"
	"path/filepath"
	"testing"
)

// A range is found by user name or uid, and only with a count above zero.
func TestSubRange(t *testing.T) {
	tests := []struct {
		body string
		want bool
	}{
		{"dev:100000:65536\n", true},
		{"other:100000:65536\n1000:200000:65536\n", true},
		{"dev:100000:0\n", false},
		{"developer:100000:65536\n", false},
		{"", false},
	}
	for _, tt := range tests {
		f := filepath.Join(t.TempDir(), "subuid")
		if err := os.WriteFile(f, []byte(tt.body), 0o644); err != nil {
			t.Fatal(err)
		}
		if _, _, err := subRange(f, "dev", 1000); (err == nil) != tt.want {
			t.Errorf("subRange(%q) gave %v, want found=%v", tt.body, err, tt.want)
		}
	}
}
