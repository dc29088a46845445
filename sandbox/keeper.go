package sandbox

import (
	"errors"
	"fmt"
	"path"
	"strings"
)

// The keeper protocol. A session's keeper listens on a SOCK_SEQPACKET unix
// socket; every message is one JSON-encoded value, and file descriptors
// ride along as SCM_RIGHTS. A client sends one Request; for a spawn the
// keeper answers with a Reply saying the process started (with the pty
// master attached when a terminal was asked for), and later with a Reply
// carrying its exit status. Meanwhile the client may send Requests with
// Signal set; closing the connection hangs the process up.
//
// The keeper decides: a request says only what to run (argv, environment,
// working directory, umask, terminal size and the streams). The user
// namespace, no_new_privs, fd closing, new session, parent-death signal,
// keyring, seccomp, Landlock and capability bounds are the keeper's own,
// chosen when the session's keeper was started, and applied to every
// process it starts whoever asks.

// Request is what a client asks of a keeper.
type Request struct {
	Spawn  *SpawnRequest `json:"spawn,omitempty"`
	Signal int           `json:"signal,omitempty"` // for the process this connection spawned
	Status bool          `json:"status,omitempty"`
	Stop   *StopRequest  `json:"stop,omitempty"`
	// Release: go now if nothing runs (the keeper lingers otherwise).
	Release bool `json:"release,omitempty"`
}

// SpawnRequest starts a process in the session. Without Tty, the request
// carries three pipes the client relays its own streams through: nothing
// of the host's (a file, a terminal) is handed in.
type SpawnRequest struct {
	Argv []string `json:"argv"`
	// Fallback commands are tried in order when Argv[0] is not found
	// inside the session (the user's shell, then /bin/sh).
	Fallback [][]string `json:"fallback,omitempty"`
	Env      []string   `json:"env,omitempty"`
	// Dir is the working directory inside, DirElse the one used when Dir
	// does not exist there.
	Dir     string `json:"dir,omitempty"`
	DirElse string `json:"dir_else,omitempty"`
	Umask   uint32 `json:"umask"`
	Tty     bool   `json:"tty,omitempty"`
	Rows    uint16 `json:"rows,omitempty"`
	Cols    uint16 `json:"cols,omitempty"`
}

// StopRequest ends everything in the session: SIGTERM, then SIGKILL once
// GraceMillis have passed.
type StopRequest struct {
	GraceMillis int `json:"grace_ms"`
	// Why ends "session NAME was stopped from outside…" for the
	// clients whose processes it ends: ", for a reset" (or nothing).
	Why string `json:"why,omitempty"`
}

// Reply is the keeper's answer.
type Reply struct {
	Error   *OpError `json:"error,omitempty"`
	Started bool     `json:"started,omitempty"`
	// StartedIn: where the process started, as the request's Dir is not
	// in the session; empty when it is.
	StartedIn string `json:"started_in,omitempty"`
	Exit      *int   `json:"exit,omitempty"`
	Children  int    `json:"children,omitempty"`
	Released  bool   `json:"released,omitempty"`
	// Stopped, with an exit: the process ended because the session was
	// stopped from outside; what to tell the user after "session NAME".
	Stopped string `json:"stopped,omitempty"`
}

// ErrNoKeeper means no keeper answered on the socket: none runs, or one
// is on its way out. The caller starts a new one.
var ErrNoKeeper = errors.New("no keeper is running")

// validate checks a spawn, by the client before it is sent and by the
// keeper again, which trusts no client.
func (r *SpawnRequest) validate() error {
	if len(r.Argv) == 0 || r.Argv[0] == "" {
		return errors.New("sandbox: no command to run")
	}
	for _, argv := range append([][]string{r.Argv}, r.Fallback...) {
		if len(argv) == 0 || argv[0] == "" {
			return errors.New("sandbox: empty fallback command")
		}
		for _, a := range argv {
			if strings.ContainsRune(a, 0) {
				return errors.New("sandbox: a command argument contains a NUL byte")
			}
		}
	}
	for _, kv := range r.Env {
		if strings.ContainsRune(kv, 0) || !strings.Contains(kv, "=") {
			return fmt.Errorf("sandbox: bad environment entry %q", kv)
		}
	}
	for _, d := range []string{r.Dir, r.DirElse} {
		if d != "" && (!path.IsAbs(d) || strings.ContainsRune(d, 0) || len(d) >= 4096) {
			return fmt.Errorf("sandbox: working directory %q is not an absolute path", d)
		}
	}
	if r.Umask > 0o777 {
		return fmt.Errorf("sandbox: umask %#o out of range", r.Umask)
	}
	return nil
}

// jobOps are the per-process ops the spawner applies for one request,
// after the keeper's own confinement: they come from what the request
// may choose.
func (r *SpawnRequest) jobOps() []Op {
	dir := r.Dir
	if dir == "" {
		dir = "/"
	}
	ops := []Op{
		Umask{Mode: r.Umask},
		Chdir{Path: path.Clean(dir)},
		NewSession{Ctty: r.Tty},
		ParentDeathSig{Signal: 9},
	}
	if r.DirElse != "" {
		ops[1] = Chdir{Path: path.Clean(dir), OrElse: path.Clean(r.DirElse)}
	}
	return ops
}
