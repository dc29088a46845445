// Command keeper is a session's keeper on its own: `make build` builds it
// beside incarnate as incarnate-keeper, and incarnate starts its keepers
// from it (sandbox/keeperexe_linux.go says when). It links the sandbox
// package and nothing heavier, so a cold start does not pay for the
// start-up of the interface, the registry client and the compressors.
package main

import (
	"fmt"
	"os"

	_ "github.com/incarnate-dev/incarnate/internal/prestage" // the spawner's entry point
	"github.com/incarnate-dev/incarnate/sandbox"
)

func main() {
	if sandbox.IsStage() {
		sandbox.RunStage()
	}
	fmt.Fprintln(os.Stderr, "incarnate-keeper: this is the keeper of incarnate's sessions, which incarnate starts itself; see incarnate --help")
	os.Exit(2)
}
