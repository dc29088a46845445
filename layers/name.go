package layers

import "fmt"

// MaxNameLen bounds session and base names: they become directory names
// and host names, and 64 is the host-name limit.
const MaxNameLen = 64

// NameRule says what a name may be, for error messages.
const NameRule = "letters, digits, '.', '_' and '-', starting with a letter or digit, at most 64 characters"

// ValidateName checks a session or base name before anything touches the
// disk. kind ("session", "base") only shapes the message.
func ValidateName(kind, name string) error {
	if len(name) == 0 || len(name) > MaxNameLen || !nameChars(name) {
		return fmt.Errorf("%s name %q: %w: use %s", kind, name, ErrInvalidName, NameRule)
	}
	return nil
}

// nameChars checks the characters by hand: a regexp would cost every
// start of the binary (the sandbox stage's too) its compile at init.
func nameChars(name string) bool {
	for i := 0; i < len(name); i++ {
		c := name[i]
		alnum := c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9'
		if !alnum && (i == 0 || c != '.' && c != '_' && c != '-') {
			return false
		}
	}
	return true
}
