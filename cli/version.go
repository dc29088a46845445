package cli

import (
	"fmt"
	"runtime"
	"runtime/debug"
	"strings"
)

// Version is set at link time by a release (-X github.com/incarnate-dev/incarnate/cli.Version=v1.2.3);
// without it the module's build info and VCS stamp say what was built.
var Version string

// versionInfo is what `incarnate version --json` prints.
type versionInfo struct {
	Version  string `json:"version"`
	Revision string `json:"revision,omitempty"`
	Time     string `json:"time,omitempty"`
	Modified bool   `json:"modified,omitempty"`
	Go       string `json:"go"`
	// Features is what doctor finds on this machine, check by check.
	Features map[string]feature `json:"features,omitempty"`
}

type feature struct {
	Verdict string `json:"verdict"`
	Detail  string `json:"detail,omitempty"`
}

func buildVersion() versionInfo {
	v := versionInfo{Version: Version, Go: runtime.Version()}
	if bi, ok := debug.ReadBuildInfo(); ok {
		if v.Version == "" {
			v.Version = bi.Main.Version
		}
		for _, s := range bi.Settings {
			switch s.Key {
			case "vcs.revision":
				v.Revision = s.Value
			case "vcs.time":
				v.Time = s.Value
			case "vcs.modified":
				v.Modified = s.Value == "true"
			}
		}
	}
	if v.Version == "" {
		v.Version = "(devel)"
	}
	return v
}

// String is the one line `incarnate --version` prints.
func (v versionInfo) String() string {
	s := "incarnate " + v.Version
	if v.Revision != "" {
		s += " (" + v.Revision
		if v.Modified {
			s += ", modified"
		}
		if v.Time != "" {
			s += ", " + v.Time
		}
		s += ")"
	}
	return s + " " + v.Go
}

func cmdVersion(c *ctx, args []string) error {
	fs := newFlags(c, "version")
	asJSON := fs.Bool("json", false, "print JSON, with the kernel features this machine offers (as doctor finds them)")
	pos, err := c.parseArgs(fs, args)
	if err != nil {
		return err
	}
	if len(pos) != 0 {
		return usagef("version takes no arguments")
	}
	v := buildVersion()
	if !*asJSON {
		fmt.Fprintln(c.stdout, v)
		return nil
	}
	e := c.doctorEnv()
	v.Features = map[string]feature{}
	for _, ch := range doctorChecks() {
		r := ch.run(e)
		if r.verdict == skip {
			continue
		}
		v.Features[ch.name] = feature{Verdict: strings.ToLower(verdictLabel[r.effective(ch.needed(e.root))]), Detail: r.detail}
	}
	return writeJSON(c.stdout, v)
}
