// incarnate gives developers throwaway environments that stay around until
// they throw them away: named overlay sessions on shared read-only bases.
package main

import (
	"os"

	"github.com/incarnate-dev/incarnate/cli"
	_ "github.com/incarnate-dev/incarnate/internal/prestage" // the release build's entry point
	"github.com/incarnate-dev/incarnate/sandbox"
)

func main() {
	// A re-exec'd sandbox stage must take over before any other code
	// runs; see sandbox/stage_linux.go for why Go needs the re-exec.
	if sandbox.IsStage() {
		sandbox.RunStage()
	}
	os.Exit(cli.Main(os.Args[1:], os.Stdin, os.Stdout, os.Stderr))
}
