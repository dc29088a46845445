package sandbox

import (
	"errors"
	"strings"
)

// The keeper protocol. A session's keeper listens on a SOCK_SEQPACKET unix
// socket; every message is one JSON-encoded value, and file descriptors
// ride along as SCM_RIGHTS. A client sends one Request; for a spawn the
// keeper answers with a Reply saying the process started (with the pty
// master attached when a terminal was asked for), and later with a Reply
// carrying its exit status. Meanwhile the client may send Requests with
// Signal set; closing the connection hangs the process up.

// Request is what a client asks of a keeper.
type Request struct {
	Spawn  *SpawnRequest `json:"spawn,omitempty"`
	Signal int           `json:"signal,omitempty"` // for the process this connection spawned
	Status bool          `json:"status,omitempty"`
	Stop   *StopRequest  `json:"stop,omitempty"`
}

// SpawnRequest starts a process in the session. Without Tty, the three
// standard streams are passed along with the request and handed to the
// process as they are, so pipes stay pipes.
type SpawnRequest struct {
	Spec Spec `json:"spec"`
	// Fallback commands are tried in order when Spec.Argv[0] is not
	// found inside the session (the user's shell, then /bin/sh).
	Fallback [][]string `json:"fallback,omitempty"`
	Tty      bool       `json:"tty,omitempty"`
	Rows     uint16     `json:"rows,omitempty"`
	Cols     uint16     `json:"cols,omitempty"`
}

// StopRequest ends everything in the session: SIGTERM, then SIGKILL once
// GraceMillis have passed.
type StopRequest struct {
	GraceMillis int `json:"grace_ms"`
}

// Reply is the keeper's answer.
type Reply struct {
	Error    *OpError `json:"error,omitempty"`
	Started  bool     `json:"started,omitempty"`
	Exit     *int     `json:"exit,omitempty"`
	Children int      `json:"children,omitempty"`
}

// ErrNoKeeper means no keeper answered on the socket: none runs, or one
// is on its way out. The caller starts a new one.
var ErrNoKeeper = errors.New("no keeper is running")

// validateSpawn checks a spawn before it is sent.
func (r *SpawnRequest) validate() error {
	if err := r.Spec.Validate(); err != nil {
		return err
	}
	for _, argv := range r.Fallback {
		if len(argv) == 0 || argv[0] == "" || strings.ContainsRune(argv[0], 0) {
			return errors.New("sandbox: empty fallback command")
		}
	}
	return nil
}
