package cli

import (
	"flag"
	"fmt"
	"io"
	"os"
	"slices"
	"strings"
)

// Help goes to stdout with status 0, whichever way it is asked for
// (`help`, `--help`, `COMMAND --help`); usage mistakes go to stderr with
// status 2. Everything here is drawn from the command table.

// lookup finds the command args start with: "base import …" before a
// one-word command.
func lookup(args []string) (command, []string, bool) {
	for _, cmd := range commands() {
		words := strings.Fields(cmd.name)
		if len(args) >= len(words) && slices.Equal(args[:len(words)], words) {
			return cmd, args[len(words):], true
		}
	}
	return command{}, nil, false
}

// subcommands are the commands of group ("base"), or none.
func subcommands(group string) []command {
	var out []command
	for _, cmd := range commands() {
		if g, _, ok := strings.Cut(cmd.name, " "); ok && g == group {
			out = append(out, cmd)
		}
	}
	return out
}

// groupHelp answers `incarnate base` and `incarnate base --help`.
func groupHelp(c *ctx, group string, cmds []command, args []string) error {
	names := make([]string, len(cmds))
	for i, cmd := range cmds {
		names[i] = strings.TrimPrefix(cmd.name, group+" ")
	}
	if len(args) > 0 && !asksHelp(args) && args[0] != "help" {
		return usagef("unknown %s subcommand %q: want %s", group, args[0], orList(names))
	}
	w := c.stdout
	if len(args) == 0 {
		w = c.stderr
	}
	fmt.Fprintf(w, "usage: incarnate %s %s\n\n", group, strings.Join(names, "|"))
	listCommands(w, cmds)
	fmt.Fprintf(w, "\nRun `incarnate %s SUBCOMMAND --help` for its flags.\n", group)
	if len(args) == 0 {
		return usagef("%s needs a subcommand: %s", group, orList(names))
	}
	return nil
}

func orList(words []string) string {
	if len(words) < 2 {
		return strings.Join(words, "")
	}
	return strings.Join(words[:len(words)-1], ", ") + " or " + words[len(words)-1]
}

func cmdHelp(c *ctx, args []string) error {
	args, err := c.parseArgs(newFlags(c, "help"), args)
	if err != nil {
		return err
	}
	if len(args) == 0 {
		printUsage(c.stdout)
		return nil
	}
	if cmd, rest, ok := lookup(args); ok && len(rest) == 0 {
		printCmdUsage(c.stdout, flagsOf(cmd))
		return nil
	}
	if group := subcommands(args[0]); len(group) > 0 && len(args) == 1 {
		return groupHelp(c, args[0], group, []string{"--help"})
	}
	return usagef("unknown command %q; run `incarnate --help` for the list", strings.Join(args, " "))
}

func printUsage(w io.Writer) {
	fmt.Fprint(w, "incarnate: throwaway environments that stay until you throw them away\n\n"+
		"usage: incarnate [--root DIR] COMMAND [ARGS]\n"+
		"       incarnate [--root DIR] [--theme NAME] [--no-color]   (on a terminal: the interface)\n"+
		"       incarnate --version\n\ncommands:\n")
	listCommands(w, commands())
	fmt.Fprint(w, "\nThe store lives in $INCARNATE_ROOT, else $XDG_DATA_HOME/incarnate. A session's keeper\n"+
		"stays $INCARNATE_LINGER (default 30s) after its last command, for the next to join.\n"+
		"Run `incarnate COMMAND --help` for a command's flags; `man incarnate` has all of it\n"+
		"once `make install` has put the page in place.\n")
}

func listCommands(w io.Writer, cmds []command) {
	width := 0
	for _, cmd := range cmds {
		width = max(width, len(cmd.name))
	}
	for _, cmd := range cmds {
		fmt.Fprintf(w, "  %-*s  %s\n", width, cmd.name, cmd.summary)
	}
}

// printCmdUsage prints the usage line, summary and flags of fs's command.
func printCmdUsage(w io.Writer, fs *flag.FlagSet) {
	cmd, _, _ := lookup(strings.Fields(fs.Name()))
	fmt.Fprintf(w, "usage: incarnate %s %s\n\n%s\n\nflags:\n", cmd.name, cmd.args, cmd.summary)
	flags := flagList(cmd, fs)
	for _, f := range flags {
		if f.aliasOf != "" || f.name == "root" {
			continue
		}
		spelling := f.spelling()
		if a := aliasFor(flags, f.name); a != "" {
			spelling = "-" + a + ", " + spelling
		}
		usage := f.usage
		if f.def != "" {
			usage += " (default " + f.def + ")"
		}
		fmt.Fprintf(w, "  %s\n      %s\n", spelling, usage)
	}
	fmt.Fprint(w, "  --root DIR\n      the store, as for every command (default $INCARNATE_ROOT, else $XDG_DATA_HOME/incarnate)\n")
}

// aliasFor is the one-letter spelling of flag name, if it has one.
func aliasFor(flags []cmdFlag, name string) string {
	for _, f := range flags {
		if f.aliasOf == name {
			return f.name
		}
	}
	return ""
}

// cmdFlag is one flag as help, completion and the man page show it.
type cmdFlag struct {
	name, value, usage string // value: the placeholder, "" for a switch
	def                string // the default, when it says something: "5s"
	aliasOf            string // a one-letter spelling of another flag
}

// spelling is "--name VALUE", or "-n" for a one-letter flag.
func (f cmdFlag) spelling() string {
	dash := "--"
	if len(f.name) == 1 {
		dash = "-"
	}
	if f.value == "" {
		return dash + f.name
	}
	return dash + f.name + " " + f.value
}

// flagList lists the flags of cmd's flag set fs in order, each with
// the placeholder its usage line gives it ("--cwd DIR"), else one from
// its type.
func flagList(cmd command, fs *flag.FlagSet) []cmdFlag {
	var out []cmdFlag
	fs.VisitAll(func(f *flag.Flag) {
		value, usage := flag.UnquoteUsage(f)
		switch {
		case isSwitch(f):
			value = ""
		case placeholder(cmd.args, f.Name) != "":
			value = placeholder(cmd.args, f.Name)
		case f.Name == "root":
			value = "DIR"
		case value == "" || value == "value":
			value = "VALUE"
		default:
			value = strings.ToUpper(value)
		}
		cf := cmdFlag{name: f.Name, value: value, usage: usage}
		if d := f.DefValue; d != "" && d != "0" && d != "false" && d != "[]" && !strings.Contains(usage, "default") {
			cf.def = d
		}
		if strings.HasPrefix(usage, "same as --") {
			cf.aliasOf = strings.TrimPrefix(usage, "same as --")
		}
		out = append(out, cf)
	})
	return out
}

// placeholder is what follows --name (or -name) in a usage line, the
// brackets of the optional group around it cut off.
func placeholder(args, name string) string {
	for _, dash := range []string{"--", "-"} {
		if _, after, ok := strings.Cut(args, dash+name+" "); ok {
			p := strings.TrimSuffix(strings.Fields(after)[0], "...")
			for strings.HasSuffix(p, "]") && strings.Count(p, "]") > strings.Count(p, "[") {
				p = p[:len(p)-1]
			}
			return p
		}
	}
	return ""
}

func isSwitch(f *flag.Flag) bool {
	b, ok := f.Value.(interface{ IsBoolFlag() bool })
	return ok && b.IsBoolFlag()
}

// flagsOf is cmd's flag set, as its own code defines it: the command is
// run with --help while ctx.describing, and newFlags records the set.
func flagsOf(cmd command) *flag.FlagSet {
	null, _ := os.Open(os.DevNull)
	defer null.Close()
	c := &ctx{stdin: null, stdout: null, stderr: null, describing: true}
	_ = cmd.run(c, []string{"--help"})
	if c.flags == nil {
		return flag.NewFlagSet(cmd.name, flag.ContinueOnError)
	}
	return c.flags
}
