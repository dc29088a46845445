// Package prestage is the stage that runs before the Go runtime, in the
// model of runc's nsexec: `incarnate run NAME [--] CMD...`, and
// `incarnate enter [--shell SH] NAME` on a terminal, against a keeper
// that already runs are handled by a few kilobytes of freestanding C
// (c/stage.c), so that an agent's thousandth short command, or a second
// shell into a session, does not pay for a Go start. Go keeps the
// policy: when it starts a keeper it leaves a ticket beside the socket
// (Ticket) with what the stage may not work out alone (the session's
// environment, and where enter's shell comes from), and the stage steps
// aside for
// everything else (a flag, no keeper, a refusal, any doubt), leaving it
// to the Go path with its checks and its messages.
//
// The keeper's spawner (sandbox/spawner_linux.go) is here too
// (c/spawner.c): started as "incarnate:spawner", it applies the
// confinement the keeper worked out and forks the session's processes,
// as the Go spawner does, in one thread and without a Go start. It steps
// aside only before it has read a message (a small stack limit). Being
// one thread, it can make the session's user namespace itself
// ("incarnate:spawner own-userns[-root]"), which the keeper asks of it
// when it knows the C spawner runs (sandbox.cSpawnerRuns).
//
// A release build (make build) enters at EntrySymbol through the
// linker's -E flag; a plain `go build` has the same code but never calls
// it, and works the same, only slower. `make stage` rebuilds the blob
// from stage.c, which needs gcc and binutils.
package prestage
