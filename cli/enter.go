package cli

import (
	"flag"
	"fmt"
	"os"
	"path"
	"slices"
	"strings"
	"time"

	"github.com/creack/pty"
	"golang.org/x/term"

	"github.com/incarnate-dev/incarnate/sandbox"
	"github.com/incarnate-dev/incarnate/session"
)

func cmdEnter(c *ctx, args []string) error {
	fs := newFlags(c, "enter")
	shell := fs.String("shell", "", "shell to start (default: your $SHELL if the session has it, else /bin/sh)")
	cwd := cwdFlag(fs)
	var env []string
	envFlag(fs, &env)
	pos, err := c.parseArgs(fs, args)
	if err != nil {
		return err
	}
	if len(pos) != 1 {
		return usagef("enter takes one session name; see `incarnate enter --help`")
	}
	st, err := c.joinStore(pos[0])
	if err != nil {
		return err
	}
	warnConfig()
	o := shellOptions(st, pos[0], *shell, env)
	o.Dir, o.DirElse = startDir(*cwd)
	if !term.IsTerminal(int(c.stdin.Fd())) {
		// Commands piped in (or none, from /dev/null): the shell reads
		// them from its stdin as it would outside, and their end ends it,
		// with no terminal in between (as ssh does without one).
		return c.runPlain(st, pos[0], o)
	}
	return c.attach(st, pos[0], o)
}

// cwdFlag adds --cwd to fs.
func cwdFlag(fs *flag.FlagSet) *string {
	return fs.String("cwd", "", "working directory inside the session (default: the current one if the session has it, else ~)")
}

// startDir is where a process starts inside: the --cwd given, or else
// the caller's own directory, as distrobox, toolbx and try keep it, with
// root's home for a session that lacks it (the spawner says when).
func startDir(cwd string) (dir, orElse string) {
	if cwd != "" {
		return path.Clean(cwd), ""
	}
	if wd, err := os.Getwd(); err == nil && path.IsAbs(wd) {
		return wd, "/root"
	}
	return "/root", "/"
}

// shellOptions start an interactive shell in session name, in the
// caller's directory: shell when given, else the session's own setting,
// else shell in config.toml, else the user's $SHELL if the session has it,
// else /bin/sh.
func shellOptions(st *session.Store, name, shell string, env []string) session.ExecOptions {
	o := session.ExecOptions{Argv: []string{"/bin/sh"}, Umask: 0o022}
	o.Dir, o.DirElse = startDir("")
	m, _ := st.Get(name)
	if shell == "" && m != nil {
		shell = m.Shell
	}
	cfg, _, _ := loadConfig() // a broken one told of by enter (warnConfig) and the interface
	switch {
	case shell != "":
		o.Argv = []string{shell}
	case cfg.Shell != "":
		// Every session's, whatever its base: /bin/sh where it lacks it.
		o.Argv = []string{cfg.Shell}
		o.Fallback = [][]string{{"/bin/sh"}}
	case os.Getenv("SHELL") != "":
		o.Argv = []string{os.Getenv("SHELL")}
		o.Fallback = [][]string{{"/bin/sh"}}
	}
	// The session's own environment, with a prompt that names it unless
	// an --env gives one.
	o.Env = session.Environ(m, o.Argv[0], env)
	if !slices.ContainsFunc(o.Env, func(kv string) bool { return strings.HasPrefix(kv, "PS1=") }) {
		o.Env = append(o.Env, fmt.Sprintf(`PS1=[%s] \w \$ `, name))
	}
	return o
}

// attach runs o with a fresh pty inside the session and connects this
// terminal to it until it exits.
func (c *ctx) attach(st *session.Store, name string, o session.ExecOptions) error {
	status, stopped, err := attachTTY(st, name, o, c.stdin, c.stdout, nil)
	if err != nil {
		return c.inUserNS(err)
	}
	if stopped != "" {
		session.Notice(stopped)
	}
	return exitStatus(status)
}

// attachTTY runs o in session name with a fresh pty sized like in, and
// connects in and out to it until it exits; it returns the exit status,
// and what to tell the user when the session was stopped from outside.
// typed is what the user typed before (drainReplies), for the shell.
// `enter`, `run -t` and the TUI's enter all come through here.
func attachTTY(st *session.Store, name string, o session.ExecOptions, in, out *os.File, typed []byte) (int, string, error) {
	o.Tty = true
	if ws, err := pty.GetsizeFull(in); err == nil {
		o.Rows, o.Cols = ws.Rows, ws.Cols
	}
	conn, master, err := st.Exec(name, o)
	if err != nil {
		return 0, "", err
	}
	defer conn.Close()
	// Keys typed before the shell's terminal existed, ahead of any typed
	// later: the pty holds them for the shell as a terminal would.
	if _, err := master.Write(typed); len(typed) > 0 && err != nil {
		master.Close()
		return 0, "", err
	}
	status, err := sandbox.Attach(conn, master, in, out)
	return status, session.StoppedNote(name, conn), err
}

func cmdStop(c *ctx, args []string) error {
	fs := newFlags(c, "stop")
	grace := fs.Duration("grace", 5*time.Second, "how long what runs has after SIGHUP and SIGTERM before SIGKILL")
	pos, err := c.parseArgs(fs, args)
	if err != nil {
		return err
	}
	if len(pos) != 1 {
		return usagef("stop takes one session name")
	}
	st, err := c.storeOutside()
	if err != nil {
		return err
	}
	ran, err := st.Stop(pos[0], *grace, "")
	if err != nil {
		return err
	}
	if !ran {
		fmt.Fprintf(c.stdout, "nothing runs in %s\n", pos[0])
		return nil
	}
	fmt.Fprintf(c.stdout, "stopped %s\n", path.Base(pos[0]))
	return nil
}
