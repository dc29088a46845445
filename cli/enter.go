package cli

import (
	"fmt"
	"os"
	"path"
	"time"

	"github.com/creack/pty"
	"golang.org/x/term"

	"app/incarnate/sandbox"
	"app/incarnate/session"
)

func cmdEnter(c *ctx, args []string) error {
	fs := newFlags(c, "enter")
	shell := fs.String("shell", "", "shell to start (default: your $SHELL if the session has it, else /bin/sh)")
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
	o := shellOptions(st, pos[0], *shell)
	if !term.IsTerminal(int(c.stdin.Fd())) {
		// Commands piped in (or none, from /dev/null): the shell reads
		// them from its stdin as it would outside, and their end ends it,
		// with no terminal in between (as ssh does without one).
		return c.runPlain(st, pos[0], o)
	}
	return c.attach(st, pos[0], o)
}

// shellOptions start an interactive shell in session name: shell when
// given, else the session's own setting, else the user's $SHELL if the
// session has it, else /bin/sh.
func shellOptions(st *session.Store, name, shell string) session.ExecOptions {
	o := session.ExecOptions{Argv: []string{"/bin/sh"}, Env: shellEnv(name), Dir: "/root", DirElse: "/", Umask: 0o022}
	if shell == "" {
		if m, err := st.Get(name); err == nil {
			shell = m.Shell
		}
	}
	switch {
	case shell != "":
		o.Argv = []string{shell}
	case os.Getenv("SHELL") != "":
		o.Argv = []string{os.Getenv("SHELL")}
		o.Fallback = [][]string{{"/bin/sh"}}
	}
	return o
}

// shellEnv is the environment of an interactive shell: the terminal type
// passes through, the rest is the session's own.
func shellEnv(name string) []string {
	env := []string{
		"HOME=/root", "USER=root", "LOGNAME=root",
		"PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
		fmt.Sprintf(`PS1=[%s] \w \$ `, name),
	}
	for _, k := range []string{"TERM", "COLORTERM", "LANG", "LC_ALL"} {
		if v, ok := os.LookupEnv(k); ok {
			env = append(env, k+"="+v)
		}
	}
	return env
}

// attach runs o with a fresh pty inside the session and connects this
// terminal to it until it exits.
func (c *ctx) attach(st *session.Store, name string, o session.ExecOptions) error {
	status, err := attachTTY(st, name, o, c.stdin, c.stdout)
	if err != nil {
		return c.inUserNS(err)
	}
	return exitStatus(status)
}

// attachTTY runs o in session name with a fresh pty sized like in, and
// connects in and out to it until it exits; it returns the exit status.
// `enter`, `run -t` and the TUI's enter all come through here.
func attachTTY(st *session.Store, name string, o session.ExecOptions, in, out *os.File) (int, error) {
	o.Tty = true
	if ws, err := pty.GetsizeFull(in); err == nil {
		o.Rows, o.Cols = ws.Rows, ws.Cols
	}
	conn, master, err := st.Exec(name, o)
	if err != nil {
		return 0, err
	}
	defer conn.Close()
	return sandbox.Attach(conn, master, in, out)
}

func cmdStop(c *ctx, args []string) error {
	fs := newFlags(c, "stop")
	grace := fs.Duration("grace", 5*time.Second, "time between SIGTERM and SIGKILL")
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
	ran, err := st.Stop(pos[0], *grace)
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
