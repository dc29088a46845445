package session

import (
	"fmt"
	"os"
	"slices"
	"strings"
)

// A process in a session gets an environment of its own, not the
// caller's: tokens, SSH_AUTH_SOCK and INCARNATE_ROOT stay outside. Only
// what describes the user's terminal and locale passes in as it is; the
// rest is the session's. --env adds more, on `new` (kept with the
// session) and on `run` and `enter`.

// passedVars pass from the caller's environment as they are, with every
// LC_* variable.
var passedVars = []string{"TERM", "COLORTERM", "LANG", "LANGUAGE", "TZ"}

// DefaultPath is the PATH a session's processes start with.
const DefaultPath = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

// Environ is the environment of a process started in session m: the
// session's own HOME, USER, PATH (and SHELL when shell is given), the
// caller's terminal and locale variables, then m's --env entries and
// extra (later ones win).
func Environ(m *Meta, shell string, extra []string) []string {
	env := envHead(shell)
	for _, kv := range os.Environ() {
		if name, _, _ := strings.Cut(kv, "="); passed(name) {
			env = append(env, kv)
		}
	}
	for _, spec := range envSpecs(m, extra) {
		env = setEnv(env, spec)
	}
	return env
}

// The parts of Environ, which the pre-runtime stage also follows (it
// gets them in the session's ticket).
func envHead(shell string) []string {
	env := []string{"HOME=/root", "USER=root", "LOGNAME=root", "PATH=" + DefaultPath}
	if shell != "" {
		env = append(env, "SHELL="+shell)
	}
	return env
}

func envSpecs(m *Meta, extra []string) []string {
	var specs []string
	if m != nil {
		specs = append(specs, m.Env...)
	}
	return append(specs, extra...)
}

// passedPrefixes: every variable named so passes too.
var passedPrefixes = []string{"LC_"}

func passed(name string) bool {
	return slices.Contains(passedVars, name) || slices.ContainsFunc(passedPrefixes, func(p string) bool { return strings.HasPrefix(name, p) })
}

// sessionVar names the session to what runs in it.
func sessionVar(name string) string { return "INCARNATE_SESSION=" + name }

// setEnv applies one --env entry: NAME=VALUE sets NAME, a bare NAME
// passes the caller's value (and nothing when the caller has none).
func setEnv(env []string, spec string) []string {
	name, value, ok := strings.Cut(spec, "=")
	if !ok {
		if value, ok = os.LookupEnv(name); !ok {
			return env
		}
	}
	out := env[:0:0]
	for _, kv := range env {
		if n, _, _ := strings.Cut(kv, "="); n != name {
			out = append(out, kv)
		}
	}
	return append(out, name+"="+value)
}

// ValidateEnv checks one --env entry, NAME or NAME=VALUE.
func ValidateEnv(spec string) error {
	name, _, _ := strings.Cut(spec, "=")
	if !validEnvName(name) || strings.ContainsRune(spec, 0) {
		return fmt.Errorf("--env %q: want NAME or NAME=VALUE, with a NAME of letters, digits and _ that does not start with a digit", spec)
	}
	return nil
}

func validEnvName(name string) bool {
	if name == "" || (name[0] >= '0' && name[0] <= '9') {
		return false
	}
	for _, r := range name {
		if !(r == '_' || r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9') {
			return false
		}
	}
	return true
}
