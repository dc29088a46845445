package sandbox

import (
	"os"

	"golang.org/x/sys/unix"
)

// joinFreshKeyring gives the calling thread, and what it forks from now
// on, a new anonymous session keyring. Keyrings are not namespaced: a
// session that inherited incarnate's session keyring would possess, and
// so read, every key the user's login put there (kerberos tickets,
// ecryptfs and fscrypt keys, ssh agents' secrets). A NULL name makes a
// new keyring rather than joining, or creating, a named one another
// process could join too.
//
// The spawner calls it before every fork, so that sessions do not share
// one keyring either; the seccomp filter lets this exact call through
// and refuses every other use of the key syscalls.
func joinFreshKeyring() error {
	// unix.KeyctlJoinSessionKeyring takes a string and would pass a
	// pointer to "", which names a keyring; the raw call passes NULL.
	_, _, e := unix.Syscall(unix.SYS_KEYCTL, unix.KEYCTL_JOIN_SESSION_KEYRING, 0, 0)
	if e != 0 {
		return os.NewSyscallError("keyctl(KEYCTL_JOIN_SESSION_KEYRING)", e)
	}
	return nil
}
