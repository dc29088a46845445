package layers

import (
	"errors"
	"strings"
	"testing"
)

func TestValidateName(t *testing.T) {
	bad := []string{"", ".", "..", "../x", "a/b", "a,b", "a:b", "-rf", ".hidden", "nul\x00byte",
		"new\nline", "sp ace", strings.Repeat("x", 300), strings.Repeat("y", MaxNameLen+1), "ünïcödé", "名前"}
	for _, name := range bad {
		err := ValidateName("session", name)
		if !errors.Is(err, ErrInvalidName) {
			t.Errorf("ValidateName(%q) = %v, want ErrInvalidName", name, err)
		} else if !strings.Contains(err.Error(), "letters, digits") {
			t.Errorf("ValidateName(%q): message %q does not say what is allowed", name, err)
		}
	}
	good := []string{"a", "web", "dev-1", "py3.12", "my_box", "0day", strings.Repeat("z", MaxNameLen)}
	for _, name := range good {
		if err := ValidateName("base", name); err != nil {
			t.Errorf("ValidateName(%q) = %v, want nil", name, err)
		}
	}
}
