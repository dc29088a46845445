package cli

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strconv"
	"strings"

	"golang.org/x/term"

	"github.com/incarnate-dev/incarnate/internal/termtext"
	"github.com/incarnate-dev/incarnate/session"
)

func cmdDiff(c *ctx, args []string) error {
	fs := newFlags(c, "diff")
	asJSON := fs.Bool("json", false, "print a JSON array of {\"path\", \"kind\"} objects (with \"path_base64\", its exact bytes, for a path that is not UTF-8)")
	stat := fs.Bool("stat", false, "print how many paths changed, by kind")
	patch := fs.Bool("patch", false, "print the text diff of each file against the base (binaries by size and hash)")
	fs.BoolVar(patch, "p", false, "same as --patch")
	pos, err := c.parseArgs(fs, args)
	if err != nil {
		return err
	}
	if len(pos) == 0 {
		return usagef("diff takes a session name, and optionally paths; see `incarnate diff --help`")
	}
	name := pos[0]
	st, err := c.openStore()
	if err != nil {
		return err
	}
	changes, err := st.Diff(name)
	if err != nil {
		return err
	}
	if changes, err = session.SelectChanges(changes, pos[1:]); err != nil {
		return fmt.Errorf("session %q: %w", name, err)
	}
	if *patch && !*asJSON {
		return c.toPager(func(w io.Writer) error { return st.Patch(name, changes, w) })
	}
	w := bufio.NewWriterSize(c.stdout, 64<<10)
	switch {
	case *asJSON:
		if changes == nil {
			changes = []session.Change{}
		}
		err = json.NewEncoder(w).Encode(changes)
	case *stat:
		fmt.Fprintln(w, diffStat(name, changes))
	case len(changes) == 0:
		fmt.Fprintf(w, "no changes in %s\n", name)
	default:
		for _, ch := range changes {
			writeChange(w, ch)
		}
	}
	if ferr := w.Flush(); err == nil {
		err = ferr
	}
	return err
}

// diffStat counts changes by kind, in a line.
func diffStat(name string, changes []session.Change) string {
	counts := map[session.Kind]int{}
	for _, ch := range changes {
		counts[ch.Kind]++
	}
	line := fmt.Sprintf("%d paths changed in %s", len(changes), name)
	for _, k := range []session.Kind{session.Added, session.Modified, session.Deleted, session.Replaced} {
		if counts[k] > 0 {
			line += fmt.Sprintf(", %d %s", counts[k], k)
		}
	}
	return line
}

// toPager writes what write writes to $PAGER (less -FRX by default) when
// stdout is a terminal, as git does, else to stdout.
func (c *ctx) toPager(write func(io.Writer) error) error {
	if !term.IsTerminal(int(c.stdout.Fd())) {
		w := bufio.NewWriterSize(c.stdout, 64<<10)
		if err := write(w); err != nil {
			return err
		}
		return w.Flush()
	}
	pager := os.Getenv("PAGER")
	if pager == "" {
		pager = "less -FRX"
	}
	// A pager that is not there would take the output with it: the
	// shell starts, says "not found" and reads nothing.
	if f := strings.Fields(pager); len(f) == 0 || lookPath(f[0]) != nil {
		fmt.Fprintf(c.stderr, "incarnate: note: no pager %q here (set $PAGER); printing straight out\n", pager)
		return write(c.stdout)
	}
	cmd := exec.Command("/bin/sh", "-c", pager)
	cmd.Stdout, cmd.Stderr = c.stdout, c.stderr
	in, err := cmd.StdinPipe()
	if err != nil {
		return err
	}
	if err := cmd.Start(); err != nil {
		return write(c.stdout) // no pager: straight out
	}
	werr := write(in)
	in.Close()
	if err := cmd.Wait(); err != nil && werr == nil {
		return nil // the pager quit early (q): not an error of ours
	}
	return werr
}

func lookPath(prog string) error {
	_, err := exec.LookPath(prog)
	return err
}

// writeChange prints "A /path", with "/" after a replaced directory. A
// path that would break the one-change-a-line format or reach the
// terminal as something else (a newline, any control or format character,
// C1 and bidi controls included, invalid UTF-8) is printed Go-quoted, as
// is one with a quote or backslash, so that a quoted path is never
// mistaken for a plain one.
func writeChange(w *bufio.Writer, ch session.Change) {
	p := ch.Path
	if ch.Kind == session.Replaced && p != "/" {
		p += "/"
	}
	if needsQuote(p) {
		p = strconv.Quote(p)
	}
	w.WriteString(ch.Kind.Letter())
	w.WriteByte(' ')
	w.WriteString(p)
	w.WriteByte('\n')
}

func needsQuote(p string) bool {
	return !termtext.Safe(p) || strings.ContainsAny(p, `"\`)
}

func cmdExport(c *ctx, args []string) error {
	fs := newFlags(c, "export")
	pos, err := c.parseArgs(fs, args)
	if err != nil {
		return err
	}
	if len(pos) != 2 {
		return usagef("usage: incarnate export NAME FILE.tar (FILE - for stdout)")
	}
	st, err := c.openStore()
	if err != nil {
		return err
	}
	name, file := pos[0], pos[1]
	if file != "-" {
		n, err := st.ExportFile(name, file)
		if err != nil {
			return err
		}
		fmt.Fprintf(c.stdout, "exported %d changes of session %s to %s\n", n, name, file)
		return nil
	}
	if term.IsTerminal(int(c.stdout.Fd())) {
		return usagef("export: not writing a tarball to a terminal; redirect stdout or give a file name")
	}
	w := bufio.NewWriterSize(c.stdout, 1<<20)
	if _, err := st.Export(name, w); err != nil {
		return err
	}
	return w.Flush()
}

func cmdCommit(c *ctx, args []string) error {
	fs := newFlags(c, "commit")
	force := fs.Bool("force", false, "stop what runs inside the session first")
	pos, err := c.parseArgs(fs, args)
	if err != nil {
		return err
	}
	if len(pos) != 2 {
		return usagef("usage: incarnate commit NAME BASE")
	}
	st, err := c.openStore()
	if err != nil {
		return err
	}
	if _, err := st.Get(pos[0]); err != nil {
		return err
	}
	fmt.Fprintf(c.stderr, "committing session %s ...\n", pos[0])
	b, err := st.Commit(pos[0], pos[1], *force, c.progressTo())
	if err != nil {
		return err
	}
	fmt.Fprintf(c.stdout, "committed session %s as base %s (%d layers); start on it with: incarnate new --base %s NAME\n",
		pos[0], b.Name, len(b.Layers), b.Name)
	return nil
}
