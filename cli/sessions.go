package cli

import (
	"bufio"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"golang.org/x/term"

	"github.com/incarnate-dev/incarnate/internal/progress"
	"github.com/incarnate-dev/incarnate/layers"
	"github.com/incarnate-dev/incarnate/sandbox"
	"github.com/incarnate-dev/incarnate/session"
	"github.com/incarnate-dev/incarnate/ui"
)

func cmdNew(c *ctx, args []string) error {
	fs := newFlags(c, "new")
	base := fs.String("base", layers.HostBase, "base to stand on (default: default_base in config.toml, else host)")
	var opts session.Options
	optionFlags(fs, &opts)
	pos, err := c.parseArgs(fs, args)
	if err != nil {
		return err
	}
	if len(pos) != 1 {
		return usagef("new takes one session name; see `incarnate new --help`")
	}
	if err := opts.Validate(); err != nil {
		return usagef("%v", err)
	}
	fromConfig := ""
	if !flagGiven(fs, "base") {
		cfg, path, err := loadConfig()
		if err != nil {
			return err
		}
		if cfg.DefaultBase != "" {
			*base, fromConfig = cfg.DefaultBase, path
		}
	}
	st, err := c.openStore()
	if err != nil {
		return err
	}
	m, err := st.Create(pos[0], *base, opts)
	if err != nil && fromConfig != "" && (errors.Is(err, layers.ErrNotExist) || errors.Is(err, layers.ErrInvalidName)) {
		return fmt.Errorf("%w (default_base in %s; pass --base to choose another)", err, fromConfig)
	}
	if err != nil {
		return err
	}
	fmt.Fprintf(c.stdout, "created session %s on base %s\n", m.Name, m.Base)
	warnLimits(c, opts)
	return nil
}

// loadConfig reads config.toml, the interface's and new's.
func loadConfig() (ui.Config, string, error) {
	path := filepath.Join(ui.ConfigDir(), "config.toml")
	cfg, err := ui.LoadConfig(path)
	return cfg, path, err
}

// warnConfig tells of a broken config.toml a command can do without:
// enter chooses the shell as if there were none.
func warnConfig() {
	if _, _, err := loadConfig(); err != nil {
		session.Notice(err.Error() + "; going on without it")
	}
}

func flagGiven(fs *flag.FlagSet, name string) bool {
	given := false
	fs.Visit(func(f *flag.Flag) { given = given || f.Name == name })
	return given
}

// warnLimits says when --memory and --pids cannot be enforced here.
func warnLimits(c *ctx, opts session.Options) {
	if opts.Memory > 0 || opts.Pids > 0 {
		if _, err := sandbox.CgroupSupport(); err != nil {
			fmt.Fprintf(c.stderr, "incarnate: --memory and --pids are recorded but not enforced on this machine: sessions get no cgroup of their own here (see `incarnate doctor`)\n")
		}
	}
}

// optionFlags are a session's options, as new and set take them.
func optionFlags(fs *flag.FlagSet, opts *session.Options) {
	fs.StringVar(&opts.Net, "net", "host", "network: host (shared) or none (loopback only)")
	fs.StringVar(&opts.Hostname, "hostname", "", "host name inside (default: the session's name)")
	fs.StringVar(&opts.Shell, "shell", "", "shell enter starts (default: your $SHELL if the session has it, else /bin/sh)")
	fs.Func("bind", "bind a host path inside: SRC:DST read-write, :ro read-only, :cow copy-on-write (repeatable)", func(v string) error {
		b, err := session.ParseBind(v)
		opts.Binds = append(opts.Binds, b)
		return err
	})
	envFlag(fs, &opts.Env)
	fs.Func("memory", "memory limit of the whole session, such as 2G (default: none; 0 or none for none)", func(v string) error {
		if v == "0" || v == "none" {
			opts.Memory = 0
			return nil
		}
		n, err := sandbox.ParseSize(v)
		opts.Memory = n
		return err
	})
	fs.Func("pids", fmt.Sprintf("most processes and threads at once, %d to %d (default: %d)", session.MinPids, session.MaxPids, sandbox.DefaultPidsMax), func(v string) error {
		n, err := session.ParsePids(v)
		opts.Pids = n
		return err
	})
	fs.BoolVar(&opts.Nested, "nested", false, "let processes inside make namespaces of their own, for podman or bwrap inside")
}

func cmdSet(c *ctx, args []string) error {
	fs := newFlags(c, "set")
	var given session.Options
	optionFlags(fs, &given)
	force := forceFlag(fs)
	pos, err := c.parseArgs(fs, args)
	if err != nil {
		return err
	}
	if len(pos) != 1 {
		return usagef("set takes one session name and the options to change; see `incarnate set --help`")
	}
	st, err := c.openStore()
	if err != nil {
		return err
	}
	m, err := st.Get(pos[0])
	if err != nil {
		return err
	}
	opts := m.Options
	var changed []string
	fs.Visit(func(f *flag.Flag) {
		if setOption(&opts, given, f.Name) {
			changed = append(changed, "--"+f.Name)
		}
	})
	if len(changed) == 0 {
		return usagef("set needs an option to change; see `incarnate set --help`")
	}
	if err := opts.Validate(); err != nil {
		return usagef("%v", err)
	}
	if _, err := st.SetOptions(m.Name, opts, *force); err != nil {
		return err
	}
	fmt.Fprintf(c.stdout, "set %s of session %s; `incarnate show %s` has them all\n", strings.Join(changed, ", "), m.Name, m.Name)
	if slices.Contains(changed, "--memory") || slices.Contains(changed, "--pids") {
		warnLimits(c, opts)
	}
	return nil
}

// setOption copies option flag from given to opts; a repeatable one
// given replaces the whole list. It reports whether flag is an option.
func setOption(opts *session.Options, given session.Options, flag string) bool {
	switch flag {
	case "net":
		opts.Net = given.Net
	case "hostname":
		opts.Hostname = given.Hostname
	case "shell":
		opts.Shell = given.Shell
	case "bind":
		opts.Binds = given.Binds
	case "env":
		opts.Env = given.Env
	case "memory":
		opts.Memory = given.Memory
	case "pids":
		opts.Pids = given.Pids
	case "nested":
		opts.Nested = given.Nested
	default:
		return false
	}
	return true
}

func cmdLs(c *ctx, args []string) error {
	fs := newFlags(c, "ls")
	asJSON := fs.Bool("json", false, "print JSON for scripts")
	pos, err := c.parseArgs(fs, args)
	if err != nil {
		return err
	}
	if len(pos) != 0 {
		return usagef("ls takes no arguments")
	}
	st, err := c.storeOutside()
	if err != nil {
		return err
	}
	entries, err := st.ListEntries()
	if err != nil {
		return c.inUserNS(err)
	}
	rows := make([]lsRow, len(entries))
	for i, e := range entries {
		rows[i] = newLsRow(st, e)
		// A journal left by an apply that was killed: said at the next
		// look at the sessions, with what finishes it.
		if started, ok := st.InterruptedApply(rows[i].Name); ok {
			fmt.Fprintf(c.stderr, "incarnate: an apply of %s started %s was cut short: `incarnate apply %s` finishes it\n",
				rows[i].Name, started.Local().Format("2006-01-02 15:04"), rows[i].Name)
		}
	}
	if *asJSON {
		return writeJSON(c.stdout, rows)
	}
	if len(rows) == 0 {
		fmt.Fprintln(c.stdout, "No sessions yet. Create one with: incarnate new NAME")
		return nil
	}
	// tabwriter writes cell by cell: buffered, a thousand rows are a
	// few writes instead of fourteen thousand.
	out := bufio.NewWriter(c.stdout)
	defer out.Flush()
	tw := tabwriter.NewWriter(out, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "NAME\tBASE\tSHELLS\tSIZE\tCHANGES\tOPTIONS\tCREATED\tLAST ENTERED")
	for _, r := range rows {
		if r.Damaged != "" {
			fmt.Fprintf(tw, "%s\tdamaged: %s\n", r.Name, r.Damaged)
			continue
		}
		stale := ""
		if r.Stale {
			stale = "~"
		}
		fmt.Fprintf(tw, "%s\t%s\t%d\t%s%s\t%s%d\t%s\t%s\t%s\n", r.Name, r.Base, r.Shells, stale, progress.HumanSize(r.Size), stale, r.Changes, r.summary, when(r.Created), whenPtr(r.LastEntered))
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	if slices.ContainsFunc(rows, func(r lsRow) bool { return r.Stale }) {
		fmt.Fprintln(out, "~ as last measured: something runs inside")
	}
	return nil
}

// lsRow is one session as `ls` shows it, and as --json gives it.
type lsRow struct {
	Name        string     `json:"name"`
	Base        string     `json:"base"`
	Shells      int        `json:"shells"`
	Size        int64      `json:"size"`
	Changes     int        `json:"changes"`
	Created     time.Time  `json:"created"`
	LastEntered *time.Time `json:"last_entered"` // null: never entered
	Damaged     string     `json:"damaged,omitempty"`
	// Stale: something runs inside, and size and changes are as last
	// measured (shown "~" in the table).
	Stale bool `json:"stale,omitempty"`
	// The sandbox's limits: bytes (0: none), processes (0: the default).
	Memory int64 `json:"memory"`
	Pids   int64 `json:"pids"`
	Nested bool  `json:"nested"`
	// Net and Binds, as `show` gives them whole.
	Net     string              `json:"net"`
	Binds   []session.BindMount `json:"binds"`
	summary string              // as the table's OPTIONS shows them
}

func newLsRow(st *session.Store, e *session.Entry) lsRow {
	m := e.Meta
	r := lsRow{Name: m.Name, Base: m.Base, Created: m.Created, Damaged: m.Damaged,
		Memory: m.Memory, Pids: m.Pids, Nested: m.Nested, Net: orDefault(m.Net, "host"), Binds: m.Binds, summary: m.Summary()}
	if !m.LastEntered.IsZero() {
		r.LastEntered = &m.LastEntered
	}
	if m.Damaged != "" {
		return r
	}
	r.Shells = st.EntryShells(e)
	r.Size, r.Changes, r.Stale = e.Stats.Size, e.Stats.Changes, e.Stats.Stale
	return r
}

func writeJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

func whenPtr(t *time.Time) string {
	if t == nil {
		return "never"
	}
	return when(*t)
}

func when(t time.Time) string {
	if t.IsZero() {
		return "never"
	}
	return t.Local().Format("2006-01-02 15:04")
}

func cmdRm(c *ctx, args []string) error {
	fs := newFlags(c, "rm")
	yes, force := yesFlag(fs), forceFlag(fs)
	pos, err := c.parseArgs(fs, args)
	if err != nil {
		return err
	}
	if len(pos) == 0 {
		return usagef("rm needs at least one session name")
	}
	pos = unique(pos) // `rm a a` discards a once
	st, err := c.openStore()
	if err != nil {
		return err
	}
	for _, name := range pos {
		if err := st.Exists(name); err != nil {
			return err
		}
	}
	if err := c.confirm(*yes, fmt.Sprintf("Discard %s and everything written in it?", strings.Join(pos, ", ")), "nothing discarded"); err != nil {
		return err
	}
	for _, name := range pos {
		if err := st.Remove(name, *force); err != nil {
			return err
		}
		fmt.Fprintf(c.stdout, "discarded session %s\n", name)
	}
	return nil
}

func yesFlag(fs *flag.FlagSet) *bool {
	yes := fs.Bool("yes", false, "do not ask for confirmation")
	fs.BoolVar(yes, "y", false, "same as --yes")
	return yes
}

func forceFlag(fs *flag.FlagSet) *bool {
	return fs.Bool("force", false, "stop what runs inside the session first")
}

// unique is names without repeats, in their order.
func unique(names []string) []string {
	seen := map[string]bool{}
	var out []string
	for _, n := range names {
		if !seen[n] {
			seen[n] = true
			out = append(out, n)
		}
	}
	return out
}

// confirm asks question on the terminal before something destructive,
// unless yes (--yes). With no terminal to ask on it refuses: a script
// says --yes. declined is the error when the answer is no.
func (c *ctx) confirm(yes bool, question, declined string) error {
	if yes {
		return nil
	}
	if !term.IsTerminal(int(c.stdin.Fd())) {
		return usagef("%s: no terminal to ask on; pass --yes to go ahead without asking", declined)
	}
	fmt.Fprintf(c.stderr, "%s [y/N] ", question)
	line, _ := bufio.NewReader(c.stdin).ReadString('\n')
	if answer := strings.ToLower(strings.TrimSpace(line)); answer == "y" || answer == "yes" {
		return nil
	}
	return errors.New(declined)
}

func cmdRun(c *ctx, args []string) error {
	fs := newFlags(c, "run")
	cwd := cwdFlag(fs)
	mask := fs.String("umask", "022", "file creation mask, octal")
	tty := fs.Bool("t", false, "give the command a terminal (a fresh pty inside the session)")
	var env []string
	envFlag(fs, &env)
	if err := fs.Parse(args); err != nil {
		return c.flagErr(fs, err)
	}
	if fs.NArg() == 0 {
		return usagef("run needs a session name and a command; see `incarnate run --help`")
	}
	name := fs.Arg(0)
	if err := fs.Parse(fs.Args()[1:]); err != nil {
		return c.flagErr(fs, err)
	}
	argv := fs.Args()
	if len(argv) == 0 {
		return usagef("run needs a command after the session name")
	}
	um, err := strconv.ParseUint(*mask, 8, 32)
	if err != nil || um > 0o777 {
		return usagef("--umask %q: want an octal mode such as 022", *mask)
	}
	st, err := c.joinStore(name)
	if err != nil {
		return err
	}
	m, err := st.Get(name)
	if err != nil {
		return err
	}
	o := session.ExecOptions{Argv: argv, Env: session.Environ(m, "", env), Umask: uint32(um)}
	o.Dir, o.DirElse = startDir(*cwd)
	if *tty {
		return c.attach(st, name, o)
	}
	return c.runPlain(st, name, o)
}

// envFlag adds the repeatable --env NAME[=VALUE] to fs.
func envFlag(fs *flag.FlagSet, env *[]string) {
	fs.Func("env", "set NAME=VALUE inside, or pass your own NAME (repeatable); only TERM, COLORTERM, LANG, LANGUAGE, LC_* and TZ pass by default", func(v string) error {
		if err := session.ValidateEnv(v); err != nil {
			return err
		}
		*env = append(*env, v)
		return nil
	})
}

// runPlain runs o in session name on this process's own streams.
func (c *ctx) runPlain(st *session.Store, name string, o session.ExecOptions) error {
	o.Stdin, o.Stdout, o.Stderr = c.stdin, c.stdout, c.stderr
	status, err := st.Run(name, o)
	if err != nil {
		return c.inUserNS(err)
	}
	return exitStatus(status)
}
