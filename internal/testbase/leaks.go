package testbase

import (
	"fmt"
	"os"
	"strings"
	"testing"
)

// RunNoLeaks runs the package's tests and fails the run if it left an
// overlay mount on the host, whether the tests passed or not.
func RunNoLeaks(m *testing.M) int {
	before := overlayMounts()
	code := m.Run()
	if after := overlayMounts(); after > before {
		fmt.Fprintf(os.Stderr, "FAIL: %d overlay mount(s) left behind on the host\n", after-before)
		code = 1
	}
	return code
}

func overlayMounts() int {
	b, _ := os.ReadFile("/proc/self/mountinfo")
	return strings.Count(string(b), " - overlay ")
}
