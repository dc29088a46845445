// Package cli is incarnate's command line: one small function a
// subcommand, each a thin face over the session and layers packages.
package cli

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"time"

	"golang.org/x/term"

	"github.com/incarnate-dev/incarnate/internal/termtext"
	"github.com/incarnate-dev/incarnate/layers"
	"github.com/incarnate-dev/incarnate/sandbox"
	"github.com/incarnate-dev/incarnate/session"
)

// command is one subcommand. This table is the one source of the
// usage, `--help`, completion and the man page (help.go, complete.go,
// man.go); the flags come from each command's own flag set (flagsOf).
type command struct {
	name    string // "run", or "base import" for a subcommand
	args    string // the usage line after the name
	summary string
	run     func(c *ctx, args []string) error
	// operands says what each positional argument is, for completion:
	// "session", "base", "imported-base" (not host), "command", "file"
	// or a list of words ("bash zsh fish"); a last one ending in "..."
	// repeats, without the names given already; "" is anything.
	operands []string
}

// ctx is what every subcommand gets.
type ctx struct {
	stdin, stdout, stderr *os.File
	root                  string
	argv                  []string // the whole command line, to re-execute
	// describing: the command is run with --help only for newFlags to
	// record its flag set in flags (flagsOf).
	describing bool
	flags      *flag.FlagSet
}

func commands() []command {
	return []command{
		{"new", "[--base BASE] [--net host|none] [--bind SRC:DST[:ro|:cow]]... [--env NAME[=VALUE]]... [--memory SIZE] [--pids N] [--nested] [--hostname H] [--shell PATH] NAME", "create a session on a base (default: host)", cmdNew, []string{""}},
		{"set", "[--force] [--net host|none] [--bind SRC:DST[:ro|:cow]]... [--env NAME[=VALUE]]... [--memory SIZE] [--pids N] [--nested[=false]] [--hostname H] [--shell PATH] NAME", "change a stopped session's options (an option given replaces the session's, a repeated one all of them)", cmdSet, []string{"session"}},
		{"ls", "[--json]", "list sessions", cmdLs, nil},
		{"show", "[--json] NAME", "show one session's whole record: base, options, sizes, paths, what runs", cmdShow, []string{"session"}},
		{"enter", "[--shell SHELL] [--cwd DIR] [--env NAME[=VALUE]]... NAME", "open an interactive shell inside a session", cmdEnter, []string{"session"}},
		{"run", "[-t] [--cwd DIR] [--umask MODE] [--env NAME[=VALUE]]... NAME [--] CMD [ARG...]", "run a command inside a session", cmdRun, []string{"session", ""}},
		{"stop", "[--grace DURATION] NAME", "end everything running inside a session", cmdStop, []string{"session"}},
		{"rm", "[--yes] [--force] NAME...", "discard sessions and everything written in them", cmdRm, []string{"session..."}},
		{"reset", "[--yes] [--force] NAME", "throw away what a session wrote, keeping its name and base", cmdReset, []string{"session"}},
		{"rename", "[--force] OLD NEW", "rename a session", cmdRename, []string{"session", ""}},
		{"clone", "[--force] SRC DST", "copy a session, everything it wrote included", cmdClone, []string{"session", ""}},
		{"diff", "[--json|--stat|-p] NAME [PATH...]", "show what a session changed: A added, M modified, D deleted, R replaced dir; -p the text of it", cmdDiff, []string{"session", ""}},
		{"export", "NAME FILE.tar|-", "write a session's changes as a layer tarball (OCI whiteouts)", cmdExport, []string{"session", "file"}},
		{"apply", "[--dry-run] [--yes] [--force] [--keep] NAME [PATH...]", "bring a host-base session's changes back to the host; paths the host changed since are left alone", cmdApply, []string{"session", "file..."}},
		{"commit", "[--force] NAME BASE", "freeze a session's changes into a new base on top of its own", cmdCommit, []string{"session", ""}},
		{"base import", "NAME SRC", "make a base from SRC: a directory, a rootfs tarball (.tar, .tar.gz, .tar.zst, .tar.xz, .tar.bz2), a docker save archive, or an OCI image layout or archive", cmdBaseImport, []string{"", "file"}},
		{"base pull", "[--platform OS/ARCH] [--insecure] REF [NAME]", "make a base from an image in a registry (debian:12, ghcr.io/org/img@sha256:...); NAME defaults to the image's (debian-12)", cmdBasePull, []string{"", ""}},
		{"base push", "[--compression gzip|zstd] [--label KEY=VALUE]... [--insecure] NAME REF", "send a base to a registry, one image layer per layer (pulled layers are not sent again)", cmdBasePush, []string{"imported-base", ""}},
		{"base export", "[--compression gzip|zstd] [--label KEY=VALUE]... NAME FILE", "write a base as an OCI archive, which docker load, podman load and skopeo take", cmdBaseExport, []string{"imported-base", "file"}},
		{"base ls", "[--json]", "list bases: layers, size on disk, sessions on each", cmdBaseLs, nil},
		{"base rm", "[--yes] NAME...", "remove bases no session and no other base uses", cmdBaseRm, []string{"imported-base..."}},
		{"doctor", "", "check what this machine supports, with fixes", cmdDoctor, nil},
		{"version", "[--json]", "print the version (--json: with the kernel features this machine offers)", cmdVersion, nil},
		{"completion", "bash|zsh|fish", "print the shell completion script (make install puts it in place)", cmdCompletion, []string{"bash zsh fish"}},
		{"help", "[COMMAND]", "show the usage of incarnate or of one command", cmdHelp, []string{"command"}},
	}
}

// usageError is a mistake in the command line: exit status 2.
type usageError struct{ msg string }

func (e usageError) Error() string { return e.msg }

func usagef(format string, a ...any) error { return usageError{fmt.Sprintf(format, a...)} }

// exitStatus carries a status to exit with and nothing to print.
type exitStatus int

func (e exitStatus) Error() string { return fmt.Sprintf("exit status %d", int(e)) }

// Main runs the command line and returns the process exit status.
func Main(args []string, stdin, stdout, stderr *os.File) int {
	c := &ctx{stdin: stdin, stdout: stdout, stderr: stderr}
	session.Notice = func(msg string) { fmt.Fprintln(stderr, "incarnate: "+termtext.Visible(msg)) }
	err := dispatch(c, args)
	return report(stderr, err)
}

// needsSubIDs reports whether a command line must run inside an ordinary
// user's sub-id namespace (sandbox.ReexecWithSubIDs) from the start:
// every command but those that only print (help, version, completion)
// and doctor, and the interface. ls, show, run, enter and stop mostly
// read caches and talk to running keepers, and re-execute later only
// when they must (storeOutside).
func needsSubIDs(c *ctx, rest []string, help bool) bool {
	switch {
	case help:
		return false
	case len(rest) == 0:
		return c.isTerminal()
	case asksHelp(rest):
		return false
	}
	switch rest[0] {
	case "help", "version", "completion", completeCommand, manCommand, "doctor", "ls", "show", "run", "enter", "stop":
		return false
	}
	return true
}

// globalCmd is the usage line of the flags before the command, for
// their placeholders (flagList).
var globalCmd = command{name: "incarnate", args: "[--root DIR] [--theme NAME] [--no-color]"}

// globalFlags are the flags taken before the command: the one list that
// dispatch parses, completion offers and the man page shows.
func globalFlags(c *ctx, tf *tuiFlags) (fs *flag.FlagSet, help, version *bool) {
	fs = flag.NewFlagSet("incarnate", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	fs.StringVar(&c.root, "root", "", "the store directory (default $INCARNATE_ROOT, else $XDG_DATA_HOME/incarnate)")
	help = fs.Bool("help", false, "print the usage and exit")
	fs.BoolVar(help, "h", false, "same as --help")
	version = fs.Bool("version", false, "print the version and exit")
	fs.StringVar(&tf.theme, "theme", "", "the interface's theme")
	fs.BoolVar(&tf.noColor, "no-color", false, "draw the interface without colours")
	return fs, help, version
}

// asksHelp: a --help or -h among the flags (before any "--").
func asksHelp(args []string) bool {
	if i := slices.Index(args, "--"); i >= 0 {
		args = args[:i]
	}
	return slices.Contains(args, "--help") || slices.Contains(args, "-h")
}

func dispatch(c *ctx, args []string) error {
	var tf tuiFlags
	global, help, version := globalFlags(c, &tf)
	if err := global.Parse(args); err != nil {
		return flagMistake(err)
	}
	rest := global.Args()
	c.argv = args
	if needsSubIDs(c, rest, *help || *version) {
		if err := sandbox.ReexecWithSubIDs(args); err != nil {
			return err
		}
	}
	if len(rest) == 0 && !*help && c.isTerminal() {
		return cmdTUI(c, tf)
	}
	if *version {
		return cmdVersion(c, nil)
	}
	if *help || len(rest) == 0 {
		if len(rest) == 0 && !*help {
			printUsage(c.stderr)
			return usagef("no command: the interface needs a terminal on stdin and stdout; give a command to run without one")
		}
		return cmdHelp(c, rest)
	}
	if cmd, args, ok := lookup(rest); ok {
		return cmd.run(c, args)
	}
	if group := subcommands(rest[0]); len(group) > 0 {
		return groupHelp(c, rest[0], group, rest[1:])
	}
	switch rest[0] {
	case session.PurgeCommand:
		return cmdPurge(c, rest[1:])
	case completeCommand:
		return cmdComplete(c, rest[1:])
	case manCommand:
		return cmdMan(c, rest[1:])
	}
	return usagef("unknown command %q; run `incarnate --help` for the list", rest[0])
}

// report prints err the way a user should see it and picks the status:
// 2 for a usage mistake, an op's own status for a sandbox failure, the
// command's status for a command that ran, 1 for anything else.
func report(w io.Writer, err error) int {
	if err == nil {
		return 0
	}
	var st exitStatus
	if errors.As(err, &st) {
		return int(st)
	}
	fmt.Fprintf(w, "incarnate: %s\n", visibleError(err))
	var ue usageError
	if errors.As(err, &ue) || errors.Is(err, layers.ErrInvalidName) {
		return 2
	}
	var oe *sandbox.OpError
	if errors.As(err, &oe) && oe.Status != 0 {
		return oe.Status
	}
	return 1
}

// visibleError is err's text for a terminal. Errors name paths a session
// or an image chose, which are shown, not obeyed: a newline in one would
// forge a line of incarnate's own ("incarnate: done"), so every control
// is escaped, newlines and tabs too. This is done here, where every
// error reaches the terminal, rather than where each name enters a
// message: the names come in through os.PathError, archive/tar and
// go-containerregistry as much as through our own Errorf, and one missed
// would be enough. Only the lines of errors.Join are kept as lines, each
// escaped the same way.
func visibleError(err error) string {
	if j, ok := err.(interface{ Unwrap() []error }); ok {
		var texts, lines []string
		for _, e := range j.Unwrap() {
			texts, lines = append(texts, e.Error()), append(lines, visibleError(e))
		}
		// fmt.Errorf with two %w unwraps the same way, with words of
		// its own around them.
		if strings.Join(texts, "\n") == err.Error() {
			return strings.Join(lines, "\nincarnate: ")
		}
	}
	return termtext.Visible(err.Error())
}

// newFlags makes a subcommand's flag set, with --root and --help.
func newFlags(c *ctx, cmd string) *flag.FlagSet {
	fs := flag.NewFlagSet(cmd, flag.ContinueOnError)
	// The flag package would print a mistake and the usage, and report
	// prints the mistake again: the usage is for -h and --help only
	// (flagErr), and the mistake is said once.
	fs.SetOutput(io.Discard)
	fs.StringVar(&c.root, "root", c.root, "store directory (default $INCARNATE_ROOT, else $XDG_DATA_HOME/incarnate)")
	fs.Usage = func() {}
	c.flags = fs
	return fs
}

// parseArgs parses flags placed anywhere among the arguments and returns
// the other arguments in order. A "--" ends the flags.
func (c *ctx) parseArgs(fs *flag.FlagSet, args []string) ([]string, error) {
	var pos []string
	for len(args) > 0 {
		if err := fs.Parse(args); err != nil {
			return nil, c.flagErr(fs, err)
		}
		rest := fs.Args()
		if n := len(args) - len(rest); n > 0 && args[n-1] == "--" {
			return append(pos, rest...), nil
		}
		if len(rest) == 0 {
			break
		}
		pos, args = append(pos, rest[0]), rest[1:]
	}
	return pos, nil
}

func (c *ctx) flagErr(fs *flag.FlagSet, err error) error {
	if errors.Is(err, flag.ErrHelp) {
		if !c.describing {
			printCmdUsage(c.stdout, fs)
		}
		return exitStatus(0)
	}
	return flagMistake(err)
}

// flagMistake is a usage error of the flag package's, which names a
// flag with one dash where incarnate's help spells the long ones with
// two.
func flagMistake(err error) error {
	return usageError{longDash.ReplaceAllString(err.Error(), "$1--$2")}
}

var longDash = regexp.MustCompile(`(^|\s)-([a-z][a-z-]+)`)

// storeOutside opens the store for a command that can often do without
// an ordinary user's sub-id namespace (ls, run, enter): it then skips the
// re-execution into it (some 30 ms). Should it need the namespace after
// all (a repair to make at start, figures to take, a keeper to start),
// inUserNS re-executes there.
func (c *ctx) storeOutside() (*session.Store, error) {
	if !sandbox.SubIDsPending() {
		return c.openStore()
	}
	root, err := storeRoot(c.root)
	if err != nil {
		return nil, err
	}
	st, err := session.OpenOutsideUserNS(root)
	if err != nil {
		return nil, c.inUserNS(err)
	}
	return st, configureStore(st)
}

// joinStore is storeOutside for joining session name (run, enter): with
// no keeper there to join, it re-executes into the namespace at once.
func (c *ctx) joinStore(name string) (*session.Store, error) {
	st, err := c.storeOutside()
	if err == nil && st.OutsideUserNS && !st.KeeperListens(name) {
		return st, c.inUserNS(session.ErrNeedsUserNS)
	}
	return st, err
}

// inUserNS re-executes the command in the sub-id namespace when err says
// it needs it; other errors pass through.
func (c *ctx) inUserNS(err error) error {
	if !errors.Is(err, session.ErrNeedsUserNS) {
		return err
	}
	if rerr := sandbox.ReexecWithSubIDs(c.argv); rerr != nil {
		return rerr
	}
	return err // not re-executed: only if SubIDsPending changed its mind
}

// progressTo is where long work draws its progress line: stderr, when
// that is a terminal (else nil: no line).
func (c *ctx) progressTo() io.Writer {
	if term.IsTerminal(int(c.stderr.Fd())) {
		return c.stderr
	}
	return nil
}

// openStore opens the store the flags and environment point at.
func (c *ctx) openStore() (*session.Store, error) {
	root, err := storeRoot(c.root)
	if err != nil {
		return nil, err
	}
	st, err := session.Open(root)
	if err != nil {
		return nil, err
	}
	return st, configureStore(st)
}

// configureStore gives st what the CLI decides for it: how long a
// keeper stays after its last command, from $INCARNATE_LINGER when set,
// and where enter's shell may come from in config.toml.
func configureStore(st *session.Store) error {
	st.ShellConfig = func() (string, string) {
		cfg, path, err := loadConfig()
		if err != nil {
			return "", "" // a broken config is Go's to report
		}
		return path, cfg.Shell
	}
	v := os.Getenv("INCARNATE_LINGER")
	if v == "" {
		return nil
	}
	d, err := time.ParseDuration(v)
	if v == "0" {
		d, err = 0, nil
	}
	if err != nil || d < 0 {
		return usagef("INCARNATE_LINGER=%q: want a duration such as 30s, 5m or 0", v)
	}
	st.Linger = d
	return nil
}

func storeRoot(flagRoot string) (string, error) {
	root := flagRoot
	if root == "" {
		root = os.Getenv("INCARNATE_ROOT")
	}
	if root == "" {
		data := os.Getenv("XDG_DATA_HOME")
		if data == "" {
			home, err := os.UserHomeDir()
			if err != nil {
				return "", errors.New("no store: set INCARNATE_ROOT, XDG_DATA_HOME or HOME, or pass --root")
			}
			data = filepath.Join(home, ".local", "share")
		}
		root = filepath.Join(data, "incarnate")
	}
	if strings.ContainsRune(root, 0) {
		return "", usagef("store path contains a NUL byte")
	}
	return filepath.Abs(root)
}
