package layers

import (
	"fmt"
	"regexp"
)

// MaxNameLen bounds session and base names: they become directory names
// and host names, and 64 is the host-name limit.
const MaxNameLen = 64

var nameRE = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]*$`)

// NameRule says what a name may be, for error messages.
const NameRule = "letters, digits, '.', '_' and '-', starting with a letter or digit, at most 64 characters"

// ValidateName checks a session or base name before anything touches the
// disk. kind ("session", "base") only shapes the message.
func ValidateName(kind, name string) error {
	if len(name) == 0 || len(name) > MaxNameLen || !nameRE.MatchString(name) {
		return fmt.Errorf("%s name %q: %w: use %s", kind, name, ErrInvalidName, NameRule)
	}
	return nil
}
